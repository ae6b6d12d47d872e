#!/bin/sh
# Where the time goes when the emulator serves 5,000-row change-tracking pages, and when
# dvlua consumes them: callgrind (this machine's perf has no hardware counters) on
#   1. `./dvlua --serve` answering PAGES requests for the first 5,000-row page, fetched by curl;
#   2. `./dvlua bench/sync_null.lua` syncing the 10,000-row table from a normal emulator.
# Run `make bench` once first (it leaves the seeded database in bench/work/).
#
#   sh bench/profile.sh [PAGES]
#
# Output: bench/work/callgrind.{server,client}.out and the top functions of each
# (inclusive and exclusive) on stdout.
set -eu
cd "$(dirname "$0")/.."
WORK=$(pwd)/bench/work
PAGES=${1:-3}
DVLUA=${DVLUA:-./dvlua}
TOKEN=dvlua-bench-token
COLUMNS=name,accountnumber,telephone1,emailaddress1,websiteurl,numberofemployees,revenue,description,address1_city,_primarycontactid_value,modifiedon
command -v valgrind >/dev/null || { echo "profile: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
# shellcheck disable=SC2012 # our own file names, newest first
db=$(ls -t "$WORK"/seed-10000-*.sqlite 2>/dev/null | head -n 1)
[ -n "$db" ] || { echo "profile: no seeded 10,000-row database in bench/work; run make bench first" >&2; exit 1; }
cp "$db" "$WORK/profile.sqlite"
[ -f "$db-wal" ] && cp "$db-wal" "$WORK/profile.sqlite-wal"

PID=
stop() {
	if [ -n "$PID" ]; then
		kill -TERM "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
		PID=
	fi
}
trap stop EXIT INT TERM
start() { # log, then the serving command
	log=$1
	shift
	"$@" --listen 127.0.0.1:0 --db "$WORK/profile.sqlite" >"$log" 2>&1 &
	PID=$!
	i=0
	while [ $i -lt 600 ]; do
		URL=$(grep -o 'http://[0-9.:]*[0-9]' "$log" | head -n 1 || true)
		[ -n "$URL" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	cat "$log" >&2
	exit 1
}
top() { # callgrind output file: the most expensive functions, exclusive then inclusive
	echo "-- exclusive (self) instructions:"
	callgrind_annotate "$1" 2>/dev/null | awk '/file:function/ { f = 1; getline; next } f && NF' | head -n 25
	echo "-- inclusive instructions:"
	callgrind_annotate --inclusive=yes "$1" 2>/dev/null | awk '/file:function/ { f = 1; getline; next } f && NF' | head -n 40
}

# 1. The server.
start "$WORK/profile-server.log" valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.server.out" "$DVLUA" --serve
i=0
while [ $i -lt "$PAGES" ]; do
	curl -sS -g --fail -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Accept: application/json' \
		-H 'OData-MaxVersion: 4.0' -H 'OData-Version: 4.0' \
		-H 'Prefer: odata.track-changes,odata.maxpagesize=5000' \
		"$URL/api/data/v9.2/accounts?\$select=$COLUMNS"
	i=$((i + 1))
done
stop
echo "== emulator serving $PAGES first pages of 5,000 rows (instructions, callgrind)"
top "$WORK/callgrind.server.out"

# 2. The client, against an emulator that is not under valgrind.
start "$WORK/profile-emulator.log" "$DVLUA" --serve
valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.client.out" \
	"$DVLUA" bench/sync_null.lua "$URL" "$TOKEN" "$COLUMNS" >/dev/null 2>"$WORK/profile-client.log"
stop
echo
echo "== dvlua full sync of 10,000 rows into a null sink (instructions, callgrind)"
top "$WORK/callgrind.client.out"
