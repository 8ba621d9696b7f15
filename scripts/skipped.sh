#!/usr/bin/env bash
# Prints each skipped test of the last ctest run in BUILD_DIR with the reason it gave (ctest itself only
# says "Skipped"). Usage: scripts/skipped.sh BUILD_DIR
set -euo pipefail
log="${1:?usage: scripts/skipped.sh BUILD_DIR}/Testing/Temporary/LastTest.log"
[ -f "$log" ] || exit 0
# gtest writes "file:line: Skipped", then the reason, then "[  SKIPPED ] Suite.Name".
# The summary's own "[  SKIPPED ]" lines (a count, the list) follow without a "Skipped" line: not printed.
awk '/: Skipped$/ { getline reason; pending = 1; next }
     /^\[  SKIPPED \] [A-Za-z0-9_\/]+\.[A-Za-z0-9_\/]+ \(/ && pending { printf "  skipped %s: %s\n", $4, reason; pending = 0 }' "$log"
