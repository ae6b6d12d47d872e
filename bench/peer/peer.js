// The peer client: DynamicsWebApi paging a change-tracked query into a null sink.
//
//   node bench/peer/peer.js URL TOKEN COLLECTION COLUMNS [PAGE_SIZE]
//
// One page is requested at a time (retrieveMultiple following @odata.nextLink), the way
// a streaming sync would use it; retrieveAll would buffer every row and measure
// something else. Prints one JSON line: rows delivered, pages, seconds of the sync phase
// (first request to last page, monotonic clock), and whether a deltaLink came back.
"use strict";
const { DynamicsWebApi } = require("dynamics-web-api");

async function main() {
  const [url, token, collection, columns, pageSize] = process.argv.slice(2);
  if (!url || !token || !collection || !columns) {
    console.error("usage: node peer.js URL TOKEN COLLECTION COLUMNS [PAGE_SIZE]");
    process.exit(2);
  }
  const api = new DynamicsWebApi({
    serverUrl: url.replace(/\/+$/, "") + "/",
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => token,
  });
  const request = {
    collection,
    select: columns.split(","),
    maxPageSize: Number(pageSize || 5000),
    trackChanges: true,
  };
  let rows = 0;
  let pages = 0;
  let sink = 0;
  const t0 = process.hrtime.bigint();
  let page = await api.retrieveMultiple(request);
  for (;;) {
    pages++;
    for (const row of page.value) {
      rows++;
      // Touch each row so nothing can be skipped as unused.
      if (row["@odata.etag"] !== undefined) sink++;
    }
    if (!page.oDataNextLink) break;
    page = await api.retrieveMultiple(request, page.oDataNextLink);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(
    JSON.stringify({ rows, pages, seconds, delta_link: Boolean(page.oDataDeltaLink), touched: sink }) + "\n"
  );
}

main().catch((err) => {
  console.error("peer:", err && err.message ? err.message : err);
  process.exit(1);
});
