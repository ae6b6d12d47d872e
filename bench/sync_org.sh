#!/bin/sh
# An organization of BENCH_TABLES tables (default 20) of BENCH_ORG_ROWS rows each (default
# 20000) synced by scripts/sync.lua --all into SQLite: wall time and peak RSS (GNU time), with
# --parallel 20 and with --parallel 1 (default page sizes: 2,000 and 5,000 rows), against `dvlua --serve` in another process. Rows are
# copied with SQL into the emulator's store from one API-created row per table.
#
#   sh bench/sync_org.sh
set -eu
cd "$(dirname "$0")/.."
WORK=bench/work/org
DVLUA=./dvlua
T=${BENCH_TABLES:-20}
N=${BENCH_ORG_ROWS:-20000}
mkdir -p "$WORK"
DB=$WORK/emu-$T-$N.sqlite
if [ ! -f "$DB" ]; then
	rm -f "$DB"*
	DB=$DB TABLES=$T "$DVLUA" bench/sync_org_seed.lua
	sqlite3 "$DB" "
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $N - 1)
INSERT INTO row SELECT r.entity, printf('%08x-%04x-4000-8000-%012x', n, e.ord, n), r.ver * 100000 + n,
  json_set(r.data, '\$.' || r.entity || 'id', printf('%08x-%04x-4000-8000-%012x', n, e.ord, n), '\$.bench_name', 'Row ' || n,
  '\$.bench_count', n, '\$.versionnumber', r.ver * 100000 + n)
FROM seq, row r JOIN ent e ON e.logical = r.entity WHERE r.entity LIKE 'bench_t%';
UPDATE org SET v = (SELECT max(ver) FROM row) WHERE k = 'version';"
fi
PORT=$(awk 'BEGIN { srand(); print 30000 + int(rand() * 20000) }')
"$DVLUA" --serve --listen 127.0.0.1:$PORT --db "$DB" >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do grep -q http "$WORK/serve.log" && break; sleep 0.1; done
export DATAVERSE_URL=http://127.0.0.1:$PORT DATAVERSE_TOKEN=bench
TABLES=$(seq -f 'bench_t%02g' 1 "$T" | paste -sd, -)
for P in 20 1; do
	rm -f "$WORK/mirror.sqlite"*
	/usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$DVLUA" scripts/sync.lua --to "sqlite:$WORK/mirror.sqlite" \
		--tables "$TABLES" --parallel "$P" 2>"$WORK/err.txt" || { tail -n 3 "$WORK/err.txt"; }
	set -- $(cat "$WORK/time.txt")
	awk -v p="$P" -v t="$T" -v n="$N" -v s="$1" -v m="$2" 'BEGIN { printf "%d tables x %d rows, --parallel %-2d %8.2fs %9.0f rows/s %7.1f MB peak RSS\n", t, n, p, s, t * n / s, m / 1024 }'
done
kill "$SERVER" 2>/dev/null || true
wait "$SERVER" 2>/dev/null || true
