#!/usr/bin/env bash
# make demo: sample orders of several kinds against the running local stack (make up), each
# followed to its end. Operations with no public carrier API wait in the back-office queue: the
# demo plays the operator for them (and tells the simulated carrier what the operator did), and
# says so on screen. Re-runnable against the same stack: every run picks cards that are in the
# needed state at the carrier and in the registry alike.
#
# Needs bash, curl and python3 (the stack's setup needs them too). DEMO_SMOKE=1 runs it with
# fewer cards (CI).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${GSL_STACK_DIR:-$ROOT/.run}"
[ -f "$RUN/stack.env" ] || { echo "demo: no running stack (start one with: make up)"; exit 1; }
set -a; . "$RUN/stack.env"; set +a
CTL="$GSL_BIN/gslctl"
RUNID="$(date +%s)-$$"
SMOKE="${DEMO_SMOKE:-0}"
n() { if [ "$SMOKE" = 1 ]; then echo "$2"; else echo "$1"; fi; }
FAILED=0

# Cards in a given state at the simulated carrier: carrier status reason(-: any) real_named(-: any) count.
# The stack registered the first 2000 of each carrier's inventory.
cards() {
  curl -fsS "$GSL_SIM/admin/$1/cards?offset=0&limit=2000" | python3 -c "
import json, sys
carrier, status, reason, real, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
picked = [c['id'] for c in json.load(sys.stdin)
          if c['status'] == status and (reason == '-' or c['stop_reason'] == reason)
          and (real == '-' or str(c['real_named']).lower() == real)]
print(' '.join(picked[:n]))" "$1" "$2" "${3:--}" "${4:--}" "$5"
}

# The simulated carrier records what an operator did at the carrier's back office.
carrier_did() { # carrier card status stop_reason [imei]
  local card
  card=$(curl -fsS "$GSL_SIM/admin/$1/cards/$2")
  printf '%s' "$card" | python3 -c "
import json, sys
c = json.load(sys.stdin)
c['status'], c['stop_reason'] = sys.argv[1], sys.argv[2]
if len(sys.argv) > 3 and sys.argv[3]:
    c['imei'] = sys.argv[3]
print(json.dumps(c))" "$3" "$4" "${5:-}" \
    | curl -fsS -X PUT -H 'content-type: application/json' --data-binary @- "$GSL_SIM/admin/$1/cards/$2"
}

run() { # title, gslctl submit args...
  local title=$1; shift
  echo; echo "== $title"
  if [ "$#" -le 1 ]; then echo "(no cards in that state left at the simulator: skipped)"; return; fi
  "$CTL" submit "$@" --key "demo-$RUNID-$title" --watch || { echo "(finished with failures: exit $?)"; FAILED=1; }
}

# A rebind submitted, then its back-office requests worked as the operator would.
run_rebind_backoffice() { # title carrier imei cards...
  local title=$1 carrier=$2 imei=$3; shift 3
  echo; echo "== $title"
  if [ "$#" -eq 0 ]; then echo "(no cards in that state left at the simulator: skipped)"; return; fi
  local id
  id=$("$CTL" submit rebind --imei "$imei" "$@" --key "demo-$RUNID-$title" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["work_order"]["id"])')
  echo "work order $id: no public API for this operation at this carrier, so it waits in the back-office queue"
  local want=$# done_ids="" tries=0
  while [ "$(wc -w <<<"$done_ids")" -lt "$want" ] && [ "$tries" -lt 120 ]; do
    tries=$((tries + 1))
    [ "$tries" -gt 1 ] && sleep 0.5
    for r in $("$CTL" backoffice list -o json | python3 -c "
import json, sys
for r in json.load(sys.stdin):
    if str(r.get('work_order_id')) == sys.argv[1]:
        print(r['id'] + '|' + r['card'])" "$id"); do
      local rid=${r%%|*} card=${r##*|}
      case " $done_ids " in *" $rid "*) continue ;; esac
      echo "  (the demo plays the operator: claims $rid, does it at the carrier, completes it)"
      "$CTL" backoffice claim "$rid" --operator demo >/dev/null
      carrier_did "$carrier" "$card" in_use normal "$imei"
      "$CTL" backoffice complete "$rid" >/dev/null
      done_ids="$done_ids $rid"
    done
  done
  "$CTL" watch "$id" || { echo "(finished with failures: exit $?)"; FAILED=1; }
}

run "stop $(n 20 5) China Telecom cards" stop $(cards ct in_use - - "$(n 20 5)")
run "activate $(n 10 3) China Unicom cards" activate $(cards cu activatable - - "$(n 10 3)")
run "cap $(n 5 2) China Telecom cards at 512 Kbps" speed_limit --kbps 512 $(cards ct in_use - - 200 | tr ' ' '\n' | tail -n "$(n 5 2)")
run "cap $(n 3 2) real-named China Unicom cards at 512 Kbps (the account's plan for 512 Kbps)" speed_limit --kbps 512 $(cards cu in_use - true "$(n 3 2)")
run_rebind_backoffice "rebind $(n 3 1) China Mobile cards stopped for violation" cmcc 490154203237518 \
  $(cards cmcc stopped violation - "$(n 3 1)")
run "tri-net: switch $(n 3 2) cards to China Telecom" switch_network --target ct $(cards trinet in_use - - "$(n 3 2)")
echo
"$CTL" list --limit 10
echo
if [ "$FAILED" = 0 ]; then echo "demo: every order reached its end"; else echo "demo: every order reached its end (some items failed)"; fi
