// Seeds and changes the benchmark table through the Web API, like any client would.
//
//   node bench/seed.js seed  URL TOKEN ROWS [CONCURRENCY]
//   node bench/seed.js touch URL TOKEN PERCENT ROUND [CONCURRENCY]
//
// seed: creates a few contacts, then ROWS accounts with ten columns each (strings,
// integers, a decimal, a lookup to a contact; the system adds dates), over several
// keep-alive connections. touch: updates PERCENT of the accounts (a different slice for
// each ROUND) so an incremental sync has exactly that much to fetch. Prints one JSON line.
"use strict";
const http = require("http");

const CITIES = ["Redmond", "Seattle", "Lisbon", "Oslo", "Nairobi", "Osaka", "Lyon", "Austin", "Porto", "Quito"];
const WORDS = ("reliable supplier of industrial parts with regional offices and a growing portfolio " +
  "of service contracts across retail healthcare logistics and public sector customers").split(" ");

function client(url, token, concurrency) {
  const base = new URL(url.replace(/\/+$/, "") + "/api/data/v9.2/");
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  return function request(method, path, body, extra) {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers = Object.assign({
        Authorization: "Bearer " + token,
        Accept: "application/json",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
      }, extra || {});
      if (data) {
        headers["Content-Type"] = "application/json; charset=utf-8";
        headers["Content-Length"] = data.length;
      }
      const target = path.startsWith("http") ? new URL(path) : new URL(path, base);
      const req = http.request(target, { method, headers, agent }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode >= 300) {
            reject(new Error(`${method} ${target.pathname}: ${res.statusCode} ${text.slice(0, 300)}`));
          } else {
            resolve({ status: res.statusCode, headers: res.headers, text });
          }
        });
      });
      req.on("error", reject);
      if (data) req.write(data);
      req.end();
    });
  };
}

function idFrom(res) {
  const m = /\(([0-9a-fA-F-]{36})\)\s*$/.exec(res.headers["odata-entityid"] || "");
  if (m) return m[1];
  if (res.text) {
    const row = JSON.parse(res.text);
    for (const k of Object.keys(row)) if (/id$/.test(k) && /^[0-9a-f-]{36}$/i.test(row[k])) return row[k];
  }
  throw new Error("create answered without OData-EntityId");
}

function describe(i) {
  const words = [];
  for (let k = 0; k < 18; k++) words.push(WORDS[(i * 7 + k * 13) % WORDS.length]);
  return `Account ${i}: ` + words.join(" ") + ".";
}

function account(i, contacts) {
  const n = String(i).padStart(7, "0");
  return {
    name: `Contoso Holdings ${n}`,
    accountnumber: `AC-${n}`,
    telephone1: `+1-425-555-${String(i % 10000).padStart(4, "0")}`,
    emailaddress1: `info${i}@contoso${i % 997}.example.com`,
    websiteurl: `https://www.contoso${i % 997}.example.com/`,
    numberofemployees: 5 + ((i * 7919) % 50000),
    revenue: Math.round(((i * 104729) % 100000000)) / 100 + 1000,
    description: describe(i),
    address1_city: CITIES[i % CITIES.length],
    "primarycontactid@odata.bind": `/contacts(${contacts[i % contacts.length]})`,
  };
}

// Runs task(i) for i in [0, count) with at most `width` in flight.
async function pool(count, width, task) {
  let next = 0;
  async function worker() {
    while (next < count) await task(next++);
  }
  await Promise.all(Array.from({ length: Math.min(width, count) }, worker));
}

async function seed(url, token, rows, width) {
  const req = client(url, token, width);
  const t0 = Date.now();
  const contacts = [];
  const ncontacts = Math.max(1, Math.min(200, Math.floor(rows / 100)));
  await pool(ncontacts, width, async (i) => {
    const res = await req("POST", "contacts", {
      firstname: `Pat${i}`, lastname: `Contact${i}`, emailaddress1: `pat${i}@example.com`,
    });
    contacts[i] = idFrom(res);
  });
  let done = 0;
  await pool(rows, width, async (i) => {
    await req("POST", "accounts", account(i, contacts));
    if (++done % 10000 === 0 && process.stderr.isTTY) process.stderr.write(`\rseeded ${done}/${rows}`);
  });
  if (process.stderr.isTTY) process.stderr.write("\r");
  return { rows, contacts: ncontacts, seconds: (Date.now() - t0) / 1000 };
}

async function ids(req) {
  const out = [];
  let link = "accounts?$select=accountid";
  while (link) {
    const res = await req("GET", link, undefined, { Prefer: "odata.maxpagesize=5000" });
    const page = JSON.parse(res.text);
    for (const row of page.value) out.push(row.accountid);
    link = page["@odata.nextLink"];
  }
  return out;
}

async function touch(url, token, percent, round, width) {
  const req = client(url, token, width);
  const all = await ids(req);
  const step = Math.max(1, Math.round(100 / percent));
  const chosen = [];
  for (let i = round % step; i < all.length; i += step) chosen.push(all[i]);
  const t0 = Date.now();
  await pool(chosen.length, width, async (k) => {
    const i = round * 1000003 + k;
    await req("PATCH", `accounts(${chosen[k]})`, {
      telephone1: `+1-206-555-${String(i % 10000).padStart(4, "0")}`,
      revenue: 2000 + (i % 100000) / 4,
      description: describe(i + 1),
    }, { "If-Match": "*" });
  });
  return { rows: all.length, changed: chosen.length, seconds: (Date.now() - t0) / 1000 };
}

async function main() {
  const [mode, url, token, a, b, c] = process.argv.slice(2);
  let result;
  if (mode === "seed" && url && token && a) {
    result = await seed(url, token, Number(a), Number(b || 4));
  } else if (mode === "touch" && url && token && a && b) {
    result = await touch(url, token, Number(a), Number(b), Number(c || 4));
  } else {
    console.error("usage: node seed.js seed URL TOKEN ROWS [CONCURRENCY]\n" +
      "       node seed.js touch URL TOKEN PERCENT ROUND [CONCURRENCY]");
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((err) => {
  console.error("seed:", err.message);
  process.exit(1);
});
