#!/bin/sh
# The emulator's layers (docs/EMULATOR.md, "Source layout"): every file in src/emulator/
# may call only functions defined in files of a lower layer. Checked on the built objects:
# a symbol a file uses (nm: U) that another file of the same or a higher layer defines
# (nm: T) is an upward or sideways call.
# Usage: sh scripts/check-layers.sh [objdir]   (default build/src/emulator)
set -eu
dir=${1:-build/src/emulator}

# Highest layer first; files of one layer do not call each other.
layers='
serve shared
server
router
rows queries changes metadata solutions oauth functions batch bulk csdl
metadata_write row_put
metadata_json
row_write row_select row_address options metadata_store components
store
request clock entity builtin solution_parse query limits
dbset
sbuf latency multipart jwalk checkpoint wqueue
'

rank() { # layer number of a file stem (higher is lower down), or nothing
    echo "$layers" | awk -v f="$1" 'NF { n++; for (i = 1; i <= NF; i++) if ($i == f) print n }'
}

fail=0
all=$(echo "$layers" | tr ' ' '\n' | sed '/^$/d')
for f in $(ls "$dir"/*.o | sed 's#.*/##; s#\.o$##'); do
    if [ -z "$(rank "$f")" ]; then
        echo "check-layers: $f.c is in no layer (add it to scripts/check-layers.sh)"
        fail=1
    fi
done
defs=$(for f in $all; do
    [ -f "$dir/$f.o" ] && nm "$dir/$f.o" | awk -v f="$f" '$2 == "T" { print $3, f }'
done)
for f in $all; do
    [ -f "$dir/$f.o" ] || continue
    rf=$(rank "$f")
    for sym in $(nm "$dir/$f.o" | awk '$1 == "U" { print $2 }'); do
        owner=$(echo "$defs" | awk -v s="$sym" '$1 == s { print $2 }')
        [ -n "$owner" ] || continue
        ro=$(rank "$owner")
        if [ "$ro" -le "$rf" ]; then
            echo "check-layers: $f.c calls $sym() of $owner.c, which is not below it"
            fail=1
        fi
    done
done
[ "$fail" -eq 0 ] && echo "check-layers: src/emulator calls only downward"
exit "$fail"
