#!/bin/sh
# `make bench`: seeds the built-in emulator, then measures dvlua's sync against the
# transport limit (curl) and a peer client (dynamics-web-api in Node), and prints one
# table; the same figures go to bench/results.json. See docs/BENCH.md.
#
# Environment:
#   BENCH_ROWS   table sizes to measure, space separated (default "10000 100000";
#                1000000 works, seeding it takes a few minutes the first time)
#   BENCH_RUNS   runs per measurement (default 9 up to 20,000 rows, 5 up to 200,000, 1 above)
#   BENCH_FRESH  set to 1 to reseed instead of using the cached seeded databases
#   BENCH_SERVE  the command that serves the emulator (default "./dvlua --serve"); it gets
#                --listen HOST:PORT --db FILE and must print its URL
#   BENCH_BULK   set to 0 to skip the bulk write benchmark (bench/bulk.sh, its own settings;
#                `sh bench/run.sh bulk` runs only it)
#   BENCH_ORG    set to 0 to skip the organization sync (bench/sync_org.sh: 20 tables under
#                the latency model, its own BENCH_TABLES / BENCH_ORG_ROWS / ORG_* settings;
#                `sh bench/run.sh org` runs only it, `BENCH_ORG_ROWS=2000` makes it short)
#
# `sh bench/run.sh parallel` runs only the parallel bench (bench/parallel.lua: K change
# streams under the emulator's latency model, sequential against org:parallel); a full run
# ends with it. Its settings are PAR_* variables, listed in that file.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$ROOT/bench/work
DVLUA=${BENCH_DVLUA:-$ROOT/dvlua} # BENCH_DVLUA: another build to measure
ROWS=${BENCH_ROWS:-10000 100000}
TOKEN=dvlua-bench-token
COLLECTION=accounts
COLUMNS=name,accountnumber,telephone1,emailaddress1,websiteurl,numberofemployees,revenue,description,address1_city,_primarycontactid_value,modifiedon
# The SQLite mirror script takes logical names (a lookup by its own name).
MIRROR_COLUMNS=name,accountnumber,telephone1,emailaddress1,websiteurl,numberofemployees,revenue,description,address1_city,primarycontactid
MIRROR_NOTE=
PAGE_SIZE=5000
SAMPLES=$WORK/samples.jsonl
SERVE=${BENCH_SERVE:-$DVLUA --serve}
mkdir -p "$WORK"

say() { printf '%s\n' "bench: $*" >&2; }
die() {
	say "$*"
	exit 1
}

parallel_bench() {
	say "parallel: K change streams, sequential and with org:parallel (bench/parallel.lua)"
	PAR_WORK=$WORK "$DVLUA" bench/parallel.lua | tee "$WORK/parallel.txt"
}
if [ "${1:-}" = bulk ]; then
	exec sh bench/bulk.sh
fi
if [ "${1:-}" = parallel ]; then
	parallel_bench
	exit 0
fi
org_bench() {
	say "organization: $(printf '%s' "${BENCH_TABLES:-20}") tables synced in parallel and one after another (bench/sync_org.sh)"
	sh bench/sync_org.sh
}
if [ "${1:-}" = org ]; then
	org_bench
	exit 0
fi

# --- The bench's own tools, installed from Debian only when missing ---------------------
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		die "need root to install $*"
	fi
}
missing=
[ -x /usr/bin/time ] || missing="$missing time"
command -v curl >/dev/null || missing="$missing curl"
command -v node >/dev/null || missing="$missing nodejs"
command -v npm >/dev/null || missing="$missing npm"
"$DVLUA" -e 'require "system"' 2>/dev/null || missing="$missing lua-system"
if [ -n "$missing" ]; then
	say "installing$missing"
	as_root apt-get update -qq
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# The peer, at the exact version pinned in bench/peer/package-lock.json.
if ! cmp -s bench/peer/package-lock.json bench/peer/node_modules/.bench-lock 2>/dev/null; then
	say "npm ci (dynamics-web-api, pinned)"
	(cd bench/peer && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
	cp bench/peer/package-lock.json bench/peer/node_modules/.bench-lock
fi

# --- The emulator, standalone, in the foreground as our child ---------------------------
EMU_PID=
EMU_URL=
emu_start() {
	db=$1
	for listen in 127.0.0.1:0 "127.0.0.1:$((20000 + $$ % 20000))"; do
		# shellcheck disable=SC2086
		$SERVE --listen "$listen" --db "$db" >"$WORK/emulator.log" 2>&1 &
		EMU_PID=$!
		tries=0
		while [ $tries -lt 200 ]; do
			EMU_URL=$(grep -o 'http://[0-9.:]*[0-9]' "$WORK/emulator.log" | head -n 1 || true)
			[ -n "$EMU_URL" ] && return 0
			kill -0 "$EMU_PID" 2>/dev/null || break
			sleep 0.05
			tries=$((tries + 1))
		done
		kill -TERM "$EMU_PID" 2>/dev/null || true
		wait "$EMU_PID" 2>/dev/null || true
		EMU_PID=
	done
	cat "$WORK/emulator.log" >&2
	die "the emulator did not start (./dvlua --serve --listen ... --db $db)"
}
emu_stop() {
	if [ -n "$EMU_PID" ]; then
		kill -TERM "$EMU_PID" 2>/dev/null || true
		wait "$EMU_PID" 2>/dev/null || true
		EMU_PID=
	fi
}
trap emu_stop EXIT
trap 'emu_stop; exit 130' INT TERM

# The seeded databases are cached, keyed by N and by what shapes them: the emulator's
# schema (the sources that create its tables) and the seeding script.
schema_key() {
	{
		{ grep -l 'CREATE TABLE' src/emulator/*.c; ls src/emulator/builtin.c; } 2>/dev/null | sort -u | xargs cat 2>/dev/null
		cat bench/seed.js
	} | sha1sum | cut -c1-12
}
KEY=$(schema_key)

# seed N: sets SEEDED to the cached database of N rows, seeding it first if need be (not
# in a subshell, so that a failure still stops the emulator).
seed() {
	n=$1
	cache=$WORK/seed-$n-$KEY.sqlite
	if [ "${BENCH_FRESH:-0}" = 1 ] || [ ! -f "$cache" ]; then
		rm -f "$cache" "$cache-wal" "$cache-shm" "$WORK/seeding.sqlite"*
		say "seeding $n accounts (cached as $(basename "$cache"))"
		emu_start "$WORK/seeding.sqlite"
		node bench/seed.js seed "$EMU_URL" "$TOKEN" "$n" 4 >"$WORK/seed.out" || die "seeding failed"
		emu_stop
		say "seeded: $(cat "$WORK/seed.out")"
		for f in "$WORK/seeding.sqlite"*; do
			mv "$f" "$cache${f#"$WORK/seeding.sqlite"}"
		done
	fi
	SEEDED=$cache
}

# --- One run of one measurement ----------------------------------------------------------
# measure NAME ROWS COMMAND...: runs COMMAND under /usr/bin/time (peak RSS: the largest
# ru_maxrss, i.e. VmHWM, of the process tree), and appends a sample. COMMAND may print a
# JSON line {"rows":…, "seconds":…}, or the sync scripts' summary line on stderr (rows from
# it); seconds is otherwise the wall time, and rows otherwise ROWS.
measure() {
	name=$1
	rows=$2
	shift 2
	t0=$(date +%s%N)
	if /usr/bin/time -f '%M' -o "$WORK/rss.txt" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt"; then
		err=null
	else
		err=$(head -n 2 "$WORK/err.txt" | tr '\n"\\\t' "  / " | cut -c1-300)
		err="\"$err\""
		say "$name (N=$N) failed: $(head -n 2 "$WORK/err.txt")"
	fi
	wall=$(($(date +%s%N) - t0))
	rss=$(tail -n 1 "$WORK/rss.txt" | tr -cd '0-9')
	result=$(grep '^{' "$WORK/out.txt" | tail -n 1 || true)
	if [ -z "$result" ]; then
		# The sync scripts' summary line: "<table>: …, I inserted, U updated, D deleted, …".
		result=$(sed -n 's/.* \([0-9][0-9]*\) inserted, \([0-9][0-9]*\) updated, \([0-9][0-9]*\) deleted.*/\1 \2 \3/p' \
			"$WORK/err.txt" | tail -n 1 | awk '{ printf "{\"rows\":%d,\"inserted\":%d,\"updated\":%d,\"deleted\":%d}", $1 + $2 + $3, $1, $2, $3 }')
	fi
	printf '{"n":%s,"measure":"%s","run":%s,"rows":%s,"wall":%s,"rss_kb":%s,"error":%s,"result":%s}\n' \
		"$N" "$name" "$RUN" "$rows" "$(awk -v w="$wall" 'BEGIN { printf "%.6f", w / 1e9 }')" \
		"${rss:-null}" "$err" "${result:-null}" >>"$SAMPLES"
}

runs_for() {
	if [ -n "${BENCH_RUNS:-}" ]; then echo "$BENCH_RUNS"; elif [ "$1" -le 20000 ]; then echo 9; elif [ "$1" -le 200000 ]; then echo 5; else echo 1; fi
}

started=$(date +%s)
: >"$SAMPLES"
for N in $ROWS; do
	seed "$N"
	db=$SEEDED
	run=$WORK/run-$N.sqlite
	rm -f "$run" "$run-wal" "$run-shm"
	for f in "$db"*; do cp "$f" "$run${f#"$db"}"; done
	emu_start "$run"
	runs=$(runs_for "$N")
	say "N=$N: $runs runs each, emulator at $EMU_URL"

	# One untimed pass so every client meets a warm server and page cache.
	sh bench/transport.sh "$EMU_URL" "$TOKEN" "$COLLECTION" "$COLUMNS" "$PAGE_SIZE" "$WORK" >/dev/null || true

	RUN=1
	while [ "$RUN" -le "$runs" ]; do
		measure transport "$N" sh bench/transport.sh "$EMU_URL" "$TOKEN" "$COLLECTION" "$COLUMNS" "$PAGE_SIZE" "$WORK"
		measure dvlua_full "$N" "$DVLUA" bench/sync_null.lua "$EMU_URL" "$TOKEN" "$COLUMNS" --save "$WORK/token-$N.txt"
		measure peer "$N" node bench/peer/peer.js "$EMU_URL" "$TOKEN" "$COLLECTION" "$COLUMNS" "$PAGE_SIZE"
		RUN=$((RUN + 1))
	done

	# Full syncs into SQLite, each into a new mirror; the last one stays for the
	# incremental runs. Should the script refuse the lookup column, the mirror is measured
	# without it, and the report says so.
	if [ -z "$MIRROR_NOTE" ]; then
		rm -f "$WORK/mirror-probe.sqlite"*
		if ! env DATAVERSE_URL="$EMU_URL" DATAVERSE_TOKEN="$TOKEN" "$DVLUA" scripts/sync_sqlite.lua --table account \
			--columns "$MIRROR_COLUMNS" --db "$WORK/mirror-probe.sqlite" >/dev/null 2>"$WORK/err.txt"; then
			MIRROR_NOTE="scripts/sync_sqlite.lua failed with the lookup column ($(head -n 1 "$WORK/err.txt" | tr -d '\042\134' | cut -c1-200)); measured without primarycontactid"
			say "$MIRROR_NOTE"
			MIRROR_COLUMNS=${MIRROR_COLUMNS%,primarycontactid}
		else
			MIRROR_NOTE="all ten columns"
		fi
	fi
	RUN=1
	while [ "$RUN" -le "$runs" ]; do
		rm -f "$WORK/mirror-$N.sqlite"*
		measure dvlua_sqlite "$N" env DATAVERSE_URL="$EMU_URL" DATAVERSE_TOKEN="$TOKEN" \
			"$DVLUA" scripts/sync_sqlite.lua --table account --columns "$MIRROR_COLUMNS" --db "$WORK/mirror-$N.sqlite"
		RUN=$((RUN + 1))
	done

	# Incremental: change 1% of the rows (untimed), then sync only those, from the token
	# of the previous sync, into the null sink and into the SQLite mirror.
	RUN=1
	while [ "$RUN" -le "$runs" ]; do
		node bench/seed.js touch "$EMU_URL" "$TOKEN" 1 "$RUN" 4 >"$WORK/touch.out" || die "changing 1% of rows failed"
		changed=$(sed -n 's/.*"changed":\([0-9]*\).*/\1/p' "$WORK/touch.out")
		measure dvlua_incr "$changed" "$DVLUA" bench/sync_null.lua "$EMU_URL" "$TOKEN" "$COLUMNS" \
			--since "$WORK/token-$N.txt" --save "$WORK/token-$N.txt"
		measure dvlua_sqlite_incr "$changed" env DATAVERSE_URL="$EMU_URL" DATAVERSE_TOKEN="$TOKEN" \
			"$DVLUA" scripts/sync_sqlite.lua --table account --columns "$MIRROR_COLUMNS" --db "$WORK/mirror-$N.sqlite"
		RUN=$((RUN + 1))
	done
	emu_stop
done

# JSON decode of one 5,000-row page: dvlua's codec against cjson (its own script).
: >"$WORK/decode.txt"
if [ -f bench/json_decode.lua ]; then
	"$DVLUA" bench/json_decode.lua >"$WORK/decode.txt" 2>&1 || say "bench/json_decode.lua failed"
fi

# Bulk writes (their own emulators and table; bench/bulk.sh prints its table and writes
# bench/bulk-results.json). BENCH_BULK=0 skips them.
if [ "${BENCH_BULK:-1}" != 0 ]; then
	emu_stop
	sh bench/bulk.sh || say "bench/bulk.sh failed"
fi

cat >"$WORK/meta.json" <<EOF
{"commit":"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)",
 "date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)",
 "dvlua":"$("$DVLUA" -v 2>/dev/null | head -n 1 || true)",
 "node":"$(node --version)",
 "peer":"dynamics-web-api $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' bench/peer/node_modules/dynamics-web-api/package.json | head -n 1)",
 "curl":"$(curl --version | head -n 1 | cut -d' ' -f1-2)",
 "cpus":$(nproc),
 "cpu":"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)",
 "page_size":$PAGE_SIZE,
 "columns":"$COLUMNS",
 "mirror_columns":"$MIRROR_COLUMNS",
 "mirror_note":"$MIRROR_NOTE",
 "elapsed_s":$(($(date +%s) - started))}
EOF
"$DVLUA" bench/report.lua "$SAMPLES" "$WORK/meta.json" "$WORK/decode.txt" bench/results.json
parallel_bench || say "bench/parallel.lua failed"
if [ "${BENCH_ORG:-1}" != 0 ]; then
	org_bench || say "bench/sync_org.sh failed"
fi
