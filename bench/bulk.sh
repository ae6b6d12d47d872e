#!/bin/sh
# Bulk writes: rows per second and peak RSS of writing N rows into an empty table keyed by
# an alternate key, through ./dvlua --serve (a fresh database file per measurement):
#   dvlua_bulk    org:upsert_many, CHUNK rows per UpsertMultiple request (bench/bulk.lua)
#   dvlua_single  one upsert request per row (bench/bulk.lua single; SINGLE rows)
#   peer_batch    dynamics-web-api's startBatch/executeBatch, CHUNK upserts per $batch
#                 (bench/peer/batch.js), one batch in flight like dvlua
# Called by bench/run.sh; runs alone too. Prints a table; writes bench/bulk-results.json.
#
# Then the same three once more with the emulator's latency model (--latency
# BENCH_BULK_LATENCY, default request_ms=20: every answer held back 20 ms, as a real
# service's round trip would), the names suffixed _lat.
#
# Environment: BENCH_BULK_ROWS (default 100000), BENCH_BULK_CHUNK (1000),
# BENCH_BULK_SINGLE (rows for the one-request-per-row run, default 10000: at a few thousand
# rows/s the full N would take minutes and measure the same rate), BENCH_BULK_RUNS (3),
# BENCH_BULK_LATENCY (empty: no latency runs), BENCH_BULK_SINGLE_LAT (default 500).
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$ROOT/bench/work
DVLUA=$ROOT/dvlua
N=${BENCH_BULK_ROWS:-100000}
CHUNK=${BENCH_BULK_CHUNK:-1000}
SINGLE=${BENCH_BULK_SINGLE:-10000}
LATENCY=${BENCH_BULK_LATENCY-request_ms=20}
SINGLE_LAT=${BENCH_BULK_SINGLE_LAT:-500}
RUNS=${BENCH_BULK_RUNS:-3}
TOKEN=dvlua-bench-token
OUT=$WORK/bulk.jsonl
mkdir -p "$WORK"
say() { printf '%s\n' "bench bulk: $*" >&2; }

if ! cmp -s bench/peer/package-lock.json bench/peer/node_modules/.bench-lock 2>/dev/null; then
	say "npm ci (dynamics-web-api, pinned)"
	(cd bench/peer && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	cp bench/peer/package-lock.json bench/peer/node_modules/.bench-lock
fi

EMU_PID=
emu_stop() {
	if [ -n "$EMU_PID" ]; then
		kill -TERM "$EMU_PID" 2>/dev/null || true
		wait "$EMU_PID" 2>/dev/null || true
		EMU_PID=
	fi
}
trap emu_stop EXIT
trap 'emu_stop; exit 130' INT TERM

# A fresh emulator on a new database file with the sample's table and key; extra
# arguments go to --serve.
emu_fresh() {
	db=$WORK/bulk.sqlite
	rm -f "$db" "$db-wal" "$db-shm"
	"$DVLUA" --serve --listen 127.0.0.1:0 --db "$db" --token "$TOKEN" "$@" >"$WORK/bulk-emulator.log" 2>&1 &
	EMU_PID=$!
	EMU_URL=
	tries=0
	while [ -z "$EMU_URL" ] && [ $tries -lt 200 ]; do
		sleep 0.05
		EMU_URL=$(grep -o 'http://[0-9.:]*[0-9]' "$WORK/bulk-emulator.log" | head -n 1 || true)
		tries=$((tries + 1))
	done
	[ -n "$EMU_URL" ] || { cat "$WORK/bulk-emulator.log" >&2; exit 1; }
	"$DVLUA" bench/bulk.lua setup "$EMU_URL" "$TOKEN" >/dev/null
}

# measure NAME ROWS COMMAND...: one JSON line with rows/s (from the command's own
# monotonic seconds) and the command's peak RSS.
measure() {
	name=$1
	rows=$2
	shift 2
	/usr/bin/time -f '%M' -o "$WORK/bulk-rss.txt" "$@" >"$WORK/bulk-out.txt" 2>"$WORK/bulk-err.txt" ||
		{ say "$name failed: $(head -n 3 "$WORK/bulk-err.txt")"; exit 1; }
	secs=$(grep -o '"seconds":[0-9.]*' "$WORK/bulk-out.txt" | tail -n 1 | cut -d: -f2)
	rss=$(tail -n 1 "$WORK/bulk-rss.txt" | tr -cd '0-9')
	printf '{"measure":"%s","rows":%s,"seconds":%s,"rows_per_s":%s,"rss_kb":%s}\n' "$name" "$rows" "$secs" \
		"$(awk -v r="$rows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')" "$rss" >>"$OUT"
}

# dynamics-web-api's executeBatch against the emulator's $batch: change set, $1 reference,
# a GET outside it, a failing change set rolled back (bench/peer/batch.js check).
emu_fresh
node bench/peer/batch.js check "$EMU_URL" "$TOKEN" >"$WORK/bulk-check.txt" 2>&1 ||
	{ say "executeBatch check failed: $(cat "$WORK/bulk-check.txt")"; exit 1; }
say "executeBatch check: $(cat "$WORK/bulk-check.txt")"
emu_stop

: >"$OUT"
run=1
while [ $run -le "$RUNS" ]; do
	say "run $run of $RUNS: $N rows, chunks of $CHUNK"
	emu_fresh
	measure dvlua_bulk "$N" "$DVLUA" bench/bulk.lua bulk "$EMU_URL" "$TOKEN" "$N" "$CHUNK"
	emu_stop
	emu_fresh
	measure peer_batch "$N" node bench/peer/batch.js upsert "$EMU_URL" "$TOKEN" "$N" "$CHUNK"
	emu_stop
	emu_fresh
	measure dvlua_single "$SINGLE" "$DVLUA" bench/bulk.lua single "$EMU_URL" "$TOKEN" "$SINGLE"
	emu_stop
	run=$((run + 1))
done
if [ -n "$LATENCY" ]; then
	say "with the latency model ($LATENCY)"
	emu_fresh --latency "$LATENCY"
	measure dvlua_bulk_lat "$N" "$DVLUA" bench/bulk.lua bulk "$EMU_URL" "$TOKEN" "$N" "$CHUNK"
	emu_stop
	emu_fresh --latency "$LATENCY"
	measure peer_batch_lat "$N" node bench/peer/batch.js upsert "$EMU_URL" "$TOKEN" "$N" "$CHUNK"
	emu_stop
	emu_fresh --latency "$LATENCY"
	measure dvlua_single_lat "$SINGLE_LAT" "$DVLUA" bench/bulk.lua single "$EMU_URL" "$TOKEN" "$SINGLE_LAT"
	emu_stop
fi

# Medians per measurement, the ratios the targets are about, and the JSON file.
"$DVLUA" - "$OUT" "$ROOT/bench/bulk-results.json" "$N" "$CHUNK" <<'EOF'
local path, out, n, chunk = ...
local by = {}
for line in io.lines(path) do
  local m = line:match('"measure":"([^"]+)"')
  by[m] = by[m] or {}
  table.insert(by[m], { rps = tonumber(line:match('"rows_per_s":([%d.]+)')), rss = tonumber(line:match('"rss_kb":(%d+)')) })
end
local function median(t, k)
  local v = {}
  for _, x in ipairs(t) do v[#v + 1] = x[k] end
  table.sort(v)
  return v[(#v + 1) // 2]
end
local rows, json = {}, {}
local names = { "dvlua_bulk", "peer_batch", "dvlua_single", "dvlua_bulk_lat", "peer_batch_lat", "dvlua_single_lat" }
print(("%-18s %12s %10s"):format("measure", "rows/s", "RSS MB"))
for _, m in ipairs(names) do
  if by[m] then
    rows[m] = { rps = median(by[m], "rps"), rss = median(by[m], "rss") }
    print(("%-18s %12d %10.1f"):format(m, rows[m].rps, rows[m].rss / 1024))
    json[#json + 1] = ('"%s":{"rows_per_s":%d,"rss_kb":%d}'):format(m, rows[m].rps, rows[m].rss)
  end
end
local function ratios(sfx, label)
  local b, p, s = rows["dvlua_bulk" .. sfx], rows["peer_batch" .. sfx], rows["dvlua_single" .. sfx]
  if not (b and p and s) then return end
  local vs_single, vs_peer, rss_ratio = b.rps / s.rps, b.rps / p.rps, b.rss / p.rss
  print(("%s: bulk vs one request per row %.1fx (target 10x), vs dynamics-web-api executeBatch %.2fx (target 1.5x), RSS dvlua/peer %.2f (target < 0.25)")
    :format(label, vs_single, vs_peer, rss_ratio))
  json[#json + 1] = ('"bulk_vs_single%s":%.2f,"bulk_vs_peer%s":%.2f,"rss_vs_peer%s":%.3f'):format(sfx, vs_single, sfx, vs_peer, sfx, rss_ratio)
end
ratios("", "emulator as is")
ratios("_lat", "with the latency model")
local f = assert(io.open(out, "w"))
f:write(('{"rows":%d,"chunk":%d,%s}\n'):format(n, chunk, table.concat(json, ",")))
f:close()
EOF
