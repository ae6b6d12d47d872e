#!/bin/sh
# The transport limit: curl fetching the same change-tracked pages as the clients, with the
# same headers, following @odata.nextLink until the last page.
#
#   sh bench/transport.sh URL TOKEN COLLECTION COLUMNS PAGE_SIZE WORKDIR
#
# Prints one JSON line. "seconds" is the sum of curl's own time_total over the pages:
# connection, request, and reading the whole body, without the cost of starting a curl
# process per page or of finding the next link, which a client in one process never pays.
# The link is read from the last (or first) few KB of the saved page, so that cost is
# small and not counted anyway.
set -eu
url=${1%/}
token=$2
collection=$3
columns=$4
page_size=$5
work=$6
page="$work/transport-page.json"
times="$work/transport-times.txt"
: >"$times"

next="$url/api/data/v9.2/$collection?\$select=$columns"
pages=0
rows=0
start=$(date +%s%N)
while [ -n "$next" ]; do
	curl -sS -g --fail -o "$page" -w '%{time_total}\n' \
		-H "Authorization: Bearer $token" \
		-H 'Accept: application/json' \
		-H 'OData-MaxVersion: 4.0' -H 'OData-Version: 4.0' \
		-H "Prefer: odata.track-changes,odata.maxpagesize=$page_size" \
		"$next" >>"$times"
	pages=$((pages + 1))
	rows=$((rows + $(grep -o '"@odata.etag"' "$page" | wc -l)))
	link='"@odata.nextLink" *: *"[^"]*"'
	next=$({ tail -c 4096 "$page" | grep -o "$link" || head -c 4096 "$page" | grep -o "$link" || true; } |
		head -n 1 | sed -e 's/^"@odata.nextLink" *: *"//' -e 's/"$//' -e 's#\\/#/#g')
done
wall=$(($(date +%s%N) - start))
awk -v rows="$rows" -v pages="$pages" -v wall="$wall" \
	'{ s += $1 } END { printf "{\"rows\":%d,\"pages\":%d,\"seconds\":%.6f,\"wall\":%.6f}\n", rows, pages, s, wall / 1e9 }' "$times"
