#!/bin/sh
# Organization sync under the emulator's latency model: BENCH_TABLES tables (default 20) of
# BENCH_ORG_ROWS rows each (default 20,000), all with change tracking, synced by
# `scripts/sync.lua --all` with --parallel ORG_PARALLEL into SQLite and into JSON lines, then
# with --parallel 1 into SQLite (the same tables one after another). Each run gets its own
# `dvlua --serve --latency ... --stats FILE`, so the server time is what the emulator counted
# (busy_ms: handler, store lock wait and the latency model's delay), and
#
#   ideal = server time / the concurrency used (the emulator's peak of requests in progress)
#
# Prints a Markdown table, the ratios against the targets (parallel within 1.25x of the ideal,
# at least 5x faster than --parallel 1, peak RSS below 100 MB), and writes every figure as one
# JSON line to bench/work/org/results.json.
#
#   sh bench/sync_org.sh                                    # the full size (a few minutes)
#   BENCH_ORG_ROWS=2000 sh bench/sync_org.sh                # a short run
#   ORG_SEQUENTIAL=0 ORG_SINKS=sqlite sh bench/sync_org.sh  # the parallel SQLite run alone
#
# Settings (environment):
#   BENCH_TABLES     tables (default 20)
#   BENCH_ORG_ROWS   rows per table (default 20000)
#   ORG_PARALLEL     --parallel of the parallel runs (default 20)
#   ORG_PAGE         --page-size (default 5000, the service's maximum page)
#   ORG_DOP          the emulator's x-ms-dop-hint (default 8, the emulator's own default; the
#                    service's hint depends on the environment)
#   ORG_REQUEST_MS   latency model, per request (default 100)
#   ORG_ROW_MS       latency model, per row returned (default 0.18: 100 ms + 5,000 x 0.18 ms
#                    = 1.0 s for a full page, as the service answers one)
#   ORG_SINKS        sinks of the parallel runs, space separated (default "sqlite jsonl")
#   ORG_SEQUENTIAL   0 skips the --parallel 1 run (then no speed-up is reported)
set -eu
cd "$(dirname "$0")/.."
WORK=bench/work/org
DVLUA=./dvlua
T=${BENCH_TABLES:-20}
N=${BENCH_ORG_ROWS:-20000}
PAR=${ORG_PARALLEL:-20}
PAGE=${ORG_PAGE:-5000}
DOP=${ORG_DOP:-8}
REQ_MS=${ORG_REQUEST_MS:-100}
ROW_MS=${ORG_ROW_MS:-0.18}
SINKS=${ORG_SINKS:-sqlite jsonl}
SEQ=${ORG_SEQUENTIAL:-1}
mkdir -p "$WORK"
[ -x /usr/bin/time ] || { echo "sync_org: needs GNU time (apt-get install time)" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "sync_org: needs the sqlite3 shell (apt-get install sqlite3)" >&2; exit 1; }

# The emulator's store: one API-created row per table, copied with SQL to N rows.
DB=$WORK/emu-$T-$N.sqlite
if [ ! -f "$DB.done" ]; then
	rm -f "$DB" "$DB-wal" "$DB-shm"
	echo "sync_org: seeding $T tables x $N rows" >&2
	DB=$DB TABLES=$T "$DVLUA" bench/sync_org_seed.lua
	sqlite3 "$DB" "
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $N - 1)
INSERT INTO row SELECT r.entity, printf('%08x-%04x-4000-8000-%012x', n, e.ord, n), r.ver * 100000 + n,
  json_set(r.data, '\$.' || r.entity || 'id', printf('%08x-%04x-4000-8000-%012x', n, e.ord, n), '\$.bench_name', 'Row ' || n,
  '\$.bench_count', n, '\$.versionnumber', r.ver * 100000 + n)
FROM seq, row r JOIN ent e ON e.logical = r.entity WHERE r.entity LIKE 'bench_t%';
UPDATE org SET v = (SELECT max(ver) FROM row) WHERE k = 'version';"
	: >"$DB.done"
fi

SERVER=
SERVER_CPU=0
TICK=$(getconf CLK_TCK)
stop_server() {
	if [ -n "$SERVER" ]; then
		# The emulator's CPU seconds (user + system), from /proc before it goes.
		SERVER_CPU=$(awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$SERVER/stat" 2>/dev/null || echo 0)
		kill "$SERVER" 2>/dev/null || true
		wait "$SERVER" 2>/dev/null || true
		SERVER=
	fi
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

start_server() {
	rm -f "$WORK/stats.json"
	: >"$WORK/serve.log"
	"$DVLUA" --serve --listen 127.0.0.1:0 --db "$DB" --dop-hint "$DOP" \
		--latency "request_ms=$REQ_MS,per_row_ms=$ROW_MS" --stats "$WORK/stats.json" >"$WORK/serve.log" 2>&1 &
	SERVER=$!
	URL=
	for _ in $(seq 1 200); do
		URL=$(grep -o 'http://[0-9.:]*[0-9]' "$WORK/serve.log" | head -n 1 || true)
		[ -n "$URL" ] && return 0
		sleep 0.05
	done
	cat "$WORK/serve.log" >&2
	echo "sync_org: the emulator did not start" >&2
	exit 1
}

# run LABEL SINK PARALLEL: one sync into a new store, its own server; appends a JSON line.
run() {
	label=$1 sink=$2 p=$3
	rm -rf "$WORK/mirror.sqlite" "$WORK/mirror.sqlite-wal" "$WORK/mirror.sqlite-shm" "$WORK/jsonl"
	case $sink in
	sqlite) to=sqlite:$WORK/mirror.sqlite ;;
	jsonl)
		mkdir -p "$WORK/jsonl"
		to=jsonl:$WORK/jsonl
		;;
	*) echo "sync_org: unknown sink $sink (sqlite or jsonl)" >&2 && exit 2 ;;
	esac
	start_server
	rc=0
	DATAVERSE_URL=$URL DATAVERSE_TOKEN=bench /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" \
		"$DVLUA" scripts/sync.lua --to "$to" --all --parallel "$p" --page-size "$PAGE" 2>"$WORK/err.txt" || rc=$?
	stop_server
	if [ "$rc" != 0 ]; then
		echo "sync_org: $label failed (exit $rc):" >&2
		tail -n 5 "$WORK/err.txt" >&2
		exit 1
	fi
	rows=$(sed -n 's/.* \([0-9][0-9]*\) inserted, .*/\1/p' "$WORK/err.txt" | awk '{ s += $1 } END { print s + 0 }')
	set -- $(tail -n 1 "$WORK/time.txt")
	wall=$1 rss=$2
	cpu=$(awk -v u="$3" -v s="$4" 'BEGIN { printf "%.2f", u + s }')
	stats=$(cat "$WORK/stats.json")
	printf '{"label":"%s","sink":"%s","parallel":%s,"wall":%s,"rss_kb":%s,"rows":%s,"cpu":%s,"server_cpu":%s,"server":%s}\n' \
		"$label" "$sink" "$p" "$wall" "$rss" "$rows" "$cpu" "$SERVER_CPU" "$stats" >>"$WORK/runs.jsonl"
	echo "sync_org: $label: ${wall}s, $rows rows, $((rss / 1024)) MB" >&2
}

# The share of one core a busy process gets right now (1: the machine is idle): on a shared
# machine it bounds how fast the client can go, whatever the server does.
cpu_share() {
	/usr/bin/time -f "%U %S %e" -o "$WORK/share.txt" timeout 3 sh -c 'while :; do :; done' || true
	tail -n 1 "$WORK/share.txt" | awk '{ printf "%.2f", ($1 + $2) / $3 }'
}
SHARE0=$(cpu_share)
echo "sync_org: $(uptime | sed 's/.*load/load/'), a busy process gets $SHARE0 of a core" >&2
: >"$WORK/runs.jsonl"
for sink in $SINKS; do run "parallel $PAR" "$sink" "$PAR"; done
[ "$SEQ" = 0 ] || run "parallel 1" sqlite 1
SHARE1=$(cpu_share)
echo "sync_org: $(uptime | sed 's/.*load/load/'), a busy process gets $SHARE1 of a core" >&2
SHARE=$(awk -v a="$SHARE0" -v b="$SHARE1" 'BEGIN { printf "%.2f", (a + b) / 2 }')

"$DVLUA" - "$WORK/runs.jsonl" "$T" "$N" "$PAGE" "$DOP" "$REQ_MS" "$ROW_MS" "$SHARE" >"$WORK/report.txt" <<'EOF'
local cjson = require "cjson"
local path, T, N, PAGE, DOP, REQ, ROW, SHARE = ...
local runs = {}
for line in io.lines(path) do runs[#runs + 1] = cjson.decode(line) end
print(("%s tables x %s rows, pages of %s, latency %s ms + %s ms/row, x-ms-dop-hint %s"):format(T, N, PAGE, REQ, ROW, DOP))
print("")
print("| run | sink | wall s | server s | of which latency model s | lock wait s | requests | peak concurrent | ideal s | wall / ideal | peak RSS MB | dvlua CPU s | emulator CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
local par, seq = nil, nil
for _, r in ipairs(runs) do
  local s = r.server
  local used = math.max(1, s.peak_concurrent)
  local ideal, ratio = "", ""
  if r.parallel > 1 then
    r.ideal = s.busy_ms / 1000 / used
    r.ratio = r.wall / r.ideal
    ideal, ratio = ("%.2f"):format(r.ideal), ("%.2f"):format(r.ratio)
  end
  -- (--parallel 1 is the baseline: its tables run one after another, though their metadata
  -- reads still overlap, so its peak is not the concurrency of its pages.)
  print(("| --parallel %d | %s | %.2f | %.2f | %.2f | %.2f | %d | %d | %s | %s | %.1f | %.2f | %.2f |"):format(r.parallel,
    r.sink, r.wall, s.busy_ms / 1000, s.latency_ms / 1000, s.lock_wait_ms / 1000, s.requests, s.peak_concurrent, ideal,
    ratio, r.rss_kb / 1024, r.cpu, r.server_cpu))
  if r.parallel > 1 and r.sink == "sqlite" then par = r elseif r.parallel > 1 and not par then par = r end
  if r.parallel == 1 then seq = r end
end
print("")
local out = { tables = tonumber(T), rows = tonumber(N), page = tonumber(PAGE), dop_hint = tonumber(DOP),
  request_ms = tonumber(REQ), per_row_ms = tonumber(ROW), runs = runs }
local share = tonumber(SHARE) or 1
for _, r in ipairs(runs) do
  if r.parallel > 1 then
    print(("--parallel %d into %s: %.2fx the ideal (target <= 1.25), peak RSS %.1f MB (target < 100)%s"):format(
      r.parallel, r.sink, r.ratio, r.rss_kb / 1024, seq and (", %.1fx faster than --parallel 1 into SQLite (target >= 5)")
        :format(seq.wall / r.wall) or ""))
    -- The client is one thread: its CPU seconds at the share of a core it can get is a floor
    -- on the wall time that no amount of overlap removes.
    r.cpu_floor = r.cpu / share
    print(("  a busy process got %.2f of a core: the client's %.2f s of CPU take at least %.1f s here (%.2fx the ideal)")
      :format(share, r.cpu, r.cpu_floor, r.cpu_floor / r.ideal))
  end
end
out.cpu_share = share
if par and seq then out.speedup = seq.wall / par.wall end
print(cjson.encode(out))
EOF
cat "$WORK/report.txt"
tail -n 1 "$WORK/report.txt" >"$WORK/results.json"
