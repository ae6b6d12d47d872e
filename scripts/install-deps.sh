#!/bin/sh
# Installs the Debian packages dvlua needs to build, test, run its demo and sync scripts.
# Idempotent: quiet and quick when everything is present. `--check` only reports.
set -eu

PACKAGES="
make gcc pkgconf ca-certificates curl
liblua5.4-dev lua5.4 lua-cjson-dev
libcurl4-openssl-dev libmicrohttpd-dev libsqlite3-dev libzip-dev libexpat1-dev libedit-dev libpq-dev
lua-busted lua-filesystem lua-sql-sqlite3 lua-sql-postgres lua-dbi-sqlite3 lua-dbi-postgresql sqlite3
lua-socket openssl luarocks
bsdutils man-db groff-base
libxml2-utils unzip
clang libclang-rt-dev
postgresql
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "missing:$missing"
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The PostgreSQL package would start a system cluster; the specs run their own.
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
