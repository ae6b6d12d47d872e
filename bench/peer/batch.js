// The peer for bulk writes: DynamicsWebApi's batch API (startBatch / executeBatch).
//
//   node bench/peer/batch.js check  URL TOKEN
//   node bench/peer/batch.js upsert URL TOKEN ROWS CHUNK
//
// check: a batch with a change set (two creates, the second binding to the first by
// Content-ID), a GET outside it, then a batch whose change set fails; prints one JSON line
// and exits non-zero when an answer is not what Dataverse documents.
// upsert: ROWS sample_book rows upserted by their alternate key sample_bookcode, CHUNK
// requests per executeBatch (one change set each), one batch in flight at a time; prints
// one JSON line: rows, batches, seconds (monotonic clock, first to last batch).
"use strict";
const { DynamicsWebApi } = require("dynamics-web-api");

function client(url, token) {
  return new DynamicsWebApi({
    serverUrl: url.replace(/\/+$/, "") + "/",
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => token,
  });
}

function fail(msg) {
  console.error("peer batch check: " + msg);
  process.exit(1);
}

async function check(api) {
  api.startBatch();
  api.create({ collection: "accounts", data: { name: "Peer batch account" }, contentId: "1" });
  api.create({
    collection: "contacts",
    data: { firstname: "Peer", "parentcustomerid_account@odata.bind": "$1" },
  });
  api.retrieveMultiple({ collection: "accounts", select: ["name"], filter: "name eq 'Peer batch account'" });
  const res = await api.executeBatch();
  if (!Array.isArray(res) || res.length !== 3) fail("expected 3 answers, got " + JSON.stringify(res));
  const accountId = res[0];
  const contactId = res[1];
  if (typeof accountId !== "string" || typeof contactId !== "string") fail("creates did not answer ids: " + JSON.stringify(res));
  if (!res[2] || !Array.isArray(res[2].value) || res[2].value.length !== 1) fail("the GET answer: " + JSON.stringify(res[2]));
  const contact = await api.retrieve({ collection: "contacts", key: contactId, select: ["_parentcustomerid_value"] });
  if (contact._parentcustomerid_value !== accountId) fail("the $1 reference was not bound");

  api.startBatch();
  api.create({ collection: "accounts", data: { name: "Peer rolled back" } });
  api.create({ collection: "accounts", data: { name: "x".repeat(200) } });
  let failed = null;
  try {
    await api.executeBatch();
  } catch (err) {
    failed = err;
  }
  if (!failed) fail("a failing change set did not fail the batch");
  const left = await api.retrieveMultiple({ collection: "accounts", select: ["name"], filter: "name eq 'Peer rolled back'" });
  if (left.value.length !== 0) fail("the failed change set was not rolled back");
  const status = Array.isArray(failed) ? failed[0] && failed[0].status : failed.status;
  return { ok: true, answers: res.length, failed_status: status || null };
}

async function upsert(api, rows, chunk) {
  let batches = 0;
  const t0 = process.hrtime.bigint();
  for (let from = 1; from <= rows; from += chunk) {
    api.startBatch();
    const to = Math.min(rows, from + chunk - 1);
    for (let i = from; i <= to; i++) {
      const code = "BK" + String(i).padStart(8, "0");
      api.upsert({
        collection: "sample_books",
        key: "sample_bookcode='" + code + "'",
        data: { sample_name: "Book " + i, sample_author: "Author " + (i % 97) },
      });
    }
    await api.executeBatch();
    batches++;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rows, batches, seconds };
}

async function main() {
  const [mode, url, token, rows, chunk] = process.argv.slice(2);
  if (!mode || !url || !token) {
    console.error("usage: node batch.js check|upsert URL TOKEN [ROWS CHUNK]");
    process.exit(2);
  }
  const api = client(url, token);
  const out = mode === "check" ? await check(api) : await upsert(api, Number(rows), Number(chunk || 1000));
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => {
  console.error("peer:", err && err.message ? err.message : JSON.stringify(err));
  process.exit(1);
});
