#!/usr/bin/env bash
# make demo: submit sample orders of several kinds to the running local stack (make up) and
# follow each to its end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${GSL_STACK_DIR:-$ROOT/.run}"
[ -f "$RUN/stack.env" ] || { echo "demo: no running stack (start one with: make up)"; exit 1; }
set -a; . "$RUN/stack.env"; set +a
CTL="$GSL_BIN/gslctl"
RUNID=$(date +%s)

# Cards in a given state, from the simulator's inventory.
cards() { # carrier status [stop_reason] count
  curl -fsS "$GSL_SIM/admin/$1/cards?offset=0&limit=2000" | python3 -c "
import json, sys
carrier, status, reason, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
picked = [c['id'] for c in json.load(sys.stdin) if c['status'] == status and (reason == '-' or c['stop_reason'] == reason)]
print(' '.join(picked[:n]))" "$1" "$2" "${3:--}" "$4"
}

run() { # title, gslctl submit args...
  local title=$1; shift
  echo; echo "== $title"
  "$CTL" submit "$@" --key "demo-$RUNID-$title" --watch || echo "(finished with failures: exit $?)"
}

run "stop 20 China Telecom cards" stop $(cards ct in_use - 20)
run "activate 10 China Unicom cards" activate $(cards cu activatable - 10)
run "cap 5 China Telecom cards at 512 Kbps" speed_limit --kbps 512 $(cards ct in_use - 45 | cut -d' ' -f41-45)
run "rebind 3 China Mobile cards stopped for violation" rebind $(cards cmcc stopped violation 3)
run "tri-net: switch 3 cards to China Telecom" switch_network --target ct $(cards trinet in_use - 3)
echo
"$CTL" list --limit 10
