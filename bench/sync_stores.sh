#!/bin/sh
# One-table sync into a null sink, into SQLite and into PostgreSQL, with wall time and peak
# RSS of each (GNU time), against the emulator served by a separate process. Rows are
# written straight into the emulator's store (copies of one row made through the API), so
# a million rows seed in seconds. See docs/BENCH.md ("Sync into stores").
#
#   sh bench/sync_stores.sh                  # BENCH_ROWS="10000 100000" by default
#   BENCH_ROWS="10000 1000000" sh bench/sync_stores.sh
#   BENCH_PG=0 sh bench/sync_stores.sh     # without PostgreSQL
#   BENCH_PG_LUADBI=0 sh bench/sync_stores.sh   # PostgreSQL through COPY only, not LuaDBI too
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$ROOT/bench/work/stores
DVLUA=${BENCH_DVLUA:-$ROOT/dvlua} # BENCH_DVLUA: another build to measure
ROWS=${BENCH_ROWS:-10000 100000}
COLUMNS=name,accountnumber,telephone1,emailaddress1,websiteurl,numberofemployees,revenue,description,address1_city,modifiedon
MIRROR_COLUMNS=name,accountnumber,telephone1,emailaddress1,websiteurl,numberofemployees,revenue,description,address1_city,modifiedon
mkdir -p "$WORK"

measure() { # label rows cmd... -> one line: label rows seconds rows/s peak_rss_kb
	label=$1
	n=$2
	shift 2
	/usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || {
		echo "bench: $label failed: $(tail -n 3 "$WORK/err.txt")" >&2
		return 0
	}
	set -- $(cat "$WORK/time.txt")
	awk -v l="$label" -v n="$n" -v s="$1" -v m="$2" 'BEGIN { printf "%-22s %9d rows %8.2fs %9.0f rows/s %7.1f MB peak RSS\n", l, n, s, n / s, m / 1024 }'
}

for N in $ROWS; do
	DB=$WORK/emu-$N.sqlite
	if [ ! -f "$DB" ]; then
		rm -f "$DB"*
		DB=$DB "$DVLUA" bench/sync_seed.lua
		sqlite3 "$DB" "
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $N - 1),
t AS (SELECT data, ver FROM row WHERE entity = 'account' LIMIT 1)
INSERT INTO row SELECT 'account', printf('%08x-0000-4000-8000-%012x', n, n), t.ver + n,
  json_set(t.data, '\$.accountid', printf('%08x-0000-4000-8000-%012x', n, n), '\$.name', 'Account ' || n,
  '\$.numberofemployees', n, '\$.versionnumber', t.ver + n) FROM seq, t;
UPDATE org SET v = (SELECT max(ver) FROM row) WHERE k = 'version';"
	fi
	PORT=$(awk 'BEGIN { srand(); print 30000 + int(rand() * 20000) }')
	"$DVLUA" --serve --listen 127.0.0.1:$PORT --db "$DB" >"$WORK/serve.log" 2>&1 &
	SERVER=$!
	for _ in $(seq 1 600); do grep -q http "$WORK/serve.log" && break; sleep 0.1; done
	URL=$(grep -o 'http://[^ ]*' "$WORK/serve.log" | head -n 1)
	export DATAVERSE_URL=$URL DATAVERSE_TOKEN=bench
	measure "null sink" "$N" "$DVLUA" bench/sync_null.lua "$URL" bench "$COLUMNS"
	rm -f "$WORK/mirror.sqlite"*
	measure "SQLite (sync_sqlite)" "$N" "$DVLUA" scripts/sync_sqlite.lua --table account --columns "$MIRROR_COLUMNS" \
		--db "$WORK/mirror.sqlite" --page-size 5000
	if [ "${BENCH_PG:-1}" = 1 ] && [ -x /usr/lib/postgresql/15/bin/initdb ]; then
		DSN=$("$DVLUA" bench/sync_pg.lua $$ 2>/dev/null | head -n 1 || true)
		PGDIR=$(echo "$DSN" | sed -n 's/.*host=\([^ ]*\).*/\1/p')
		if [ -n "$DSN" ]; then
			# COPY through the libpq module (the default), then LuaDBI's prepared INSERTs.
			measure "PostgreSQL (COPY)" "$N" env DVLUA_PG_WRITER=libpq "$DVLUA" scripts/sync_postgres.lua \
				--table account --columns "$MIRROR_COLUMNS" --dsn "$DSN" --page-size 5000
			if [ "${BENCH_PG_LUADBI:-1}" = 1 ]; then
				PG_DSN=$DSN "$DVLUA" -e 'local s = require("dataverse.sync").postgres(os.getenv("PG_DSN"))
					s:exec("DROP TABLE IF EXISTS account, sync_state") s:close()' || true
				measure "PostgreSQL (LuaDBI)" "$N" env DVLUA_PG_WRITER=luadbi "$DVLUA" scripts/sync_postgres.lua \
					--table account --columns "$MIRROR_COLUMNS" --dsn "$DSN" --page-size 5000
			fi
			if [ "$(id -u)" -eq 0 ]; then
				runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl stop -s -m immediate -D "$PGDIR/data" || true
			else
				/usr/lib/postgresql/15/bin/pg_ctl stop -s -m immediate -D "$PGDIR/data" || true
			fi
			rm -rf "$PGDIR"
		fi
	fi
	kill "$SERVER" 2>/dev/null || true
	wait "$SERVER" 2>/dev/null || true
done
