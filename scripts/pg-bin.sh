#!/usr/bin/env bash
# Print the directory of the PostgreSQL (>= 15) server binaries the project uses, the same
# search as crates/testkit/src/pg.rs: $GSL_PG_BIN, the project's .tools/pg/bin (installed by
# scripts/setup.sh when nothing else is there), then the newest /usr/lib/postgresql/<n>/bin.
# Exits 1, printing nothing, when there is none (run scripts/setup.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MIN=15
ok() { [ -n "$1" ] && [ -x "$1/initdb" ] && [ -x "$1/postgres" ]; }
if [ -n "${GSL_PG_BIN:-}" ] && ok "$GSL_PG_BIN"; then echo "$GSL_PG_BIN"; exit 0; fi
if ok "$ROOT/.tools/pg/bin"; then echo "$ROOT/.tools/pg/bin"; exit 0; fi
best=""; bestv=0
for d in /usr/lib/postgresql/*/bin; do
  v="$(basename "$(dirname "$d")")"
  case "$v" in *[!0-9]*|"") continue ;; esac
  if [ "$v" -ge "$MIN" ] && [ "$v" -gt "$bestv" ] && ok "$d"; then best="$d"; bestv="$v"; fi
done
[ -n "$best" ] || exit 1
echo "$best"
