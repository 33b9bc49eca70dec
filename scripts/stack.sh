#!/usr/bin/env bash
# The whole stack as local processes, no Docker: nats-server (JetStream, authentication, one user
# per service with its own subject permissions), PostgreSQL (the card store: a schema-owner role
# for `gsl-gateway migrate`, a read-write-only role for the gateway), carrier-sim seeded with
# demo cards, the gateway and the four adapters. Logs are prefixed with the service name. Ctrl-C stops everything.
#
# Settings (environment): PROFILE=debug|release (default debug), GSL_STACK_DIR (default .run),
# GSL_STACK_PORT_BASE (default 4222; the stack uses base .. base+9), GSL_STACK_SKIP_BUILD=1,
# GSL_TIME_SCALE (default 43200: one working day takes two seconds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROFILE="${PROFILE:-debug}"
RUN="${GSL_STACK_DIR:-$ROOT/.run}"
BASE="${GSL_STACK_PORT_BASE:-4222}"
SCALE="${GSL_TIME_SCALE:-43200}"
BIN="$ROOT/target/$PROFILE"
say() { printf '[stack] %s\n' "$*"; }

NATS_PORT=$BASE; NATS_HTTP=$((BASE + 1)); SIM_PORT=$((BASE + 2)); GW_PORT=$((BASE + 3)); GW_ADMIN=$((BASE + 4))
declare -A ADMIN=([cmcc]=$((BASE + 5)) [ct]=$((BASE + 6)) [cu]=$((BASE + 7)) [trinet]=$((BASE + 8)))
PG_PORT=$((BASE + 9)); PUSH_ADMIN=$((BASE + 10))

bash scripts/setup.sh
if [ "${GSL_STACK_SKIP_BUILD:-0}" != 1 ]; then
  say "building ($PROFILE)"
  if [ "$PROFILE" = release ]; then cargo build --release --bins; else cargo build --bins; fi
fi
NATS_BIN="${NATS_SERVER_BIN:-}"
[ -n "$NATS_BIN" ] || NATS_BIN="$ROOT/.tools/bin/nats-server"
[ -x "$NATS_BIN" ] || NATS_BIN="$(command -v nats-server)"

mkdir -p "$RUN/nats" "$RUN/logs"
# Secrets: made once per stack directory, kept out of git (.run is ignored).
if [ ! -f "$RUN/secrets.env" ]; then
  rnd() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
  {
    echo "TENANT_TOKEN=demo-$(rnd)"
    for c in cmcc ct cu trinet; do echo "ADAPTER_TOKEN_${c^^}=adapter-$c-$(rnd)"; done
    echo "OPERATOR_TOKEN=operator-$(rnd)"
    for u in gateway cmcc ct cu trinet intake push; do echo "NATS_PW_${u^^}=$(rnd)"; done
  } > "$RUN/secrets.env"
  chmod 600 "$RUN/secrets.env"
fi
# shellcheck disable=SC1091
source "$RUN/secrets.env"
# A stack directory made before the operator credential or the per-carrier
# adapter credentials existed.
rnd() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
if [ -z "${OPERATOR_TOKEN:-}" ]; then
  OPERATOR_TOKEN="operator-$(rnd)"
  echo "OPERATOR_TOKEN=$OPERATOR_TOKEN" >> "$RUN/secrets.env"
fi
for c in CMCC CT CU TRINET; do
  v="ADAPTER_TOKEN_$c"
  if [ -z "${!v:-}" ]; then
    printf -v "$v" '%s' "adapter-${c,,}-$(rnd)"
    echo "$v=${!v}" >> "$RUN/secrets.env"
  fi
done
ADAPTER_TOKENS="cmcc=$ADAPTER_TOKEN_CMCC,ct=$ADAPTER_TOKEN_CT,cu=$ADAPTER_TOKEN_CU,trinet=$ADAPTER_TOKEN_TRINET"
declare -A ATOK=([cmcc]="$ADAPTER_TOKEN_CMCC" [ct]="$ADAPTER_TOKEN_CT" [cu]="$ADAPTER_TOKEN_CU" [trinet]="$ADAPTER_TOKEN_TRINET")

# One NATS user per service with least privilege (gsl_bus::permissions, printed by
# `gsl-gateway nats-user`): only the migrate user may administer JetStream.
# A stack directory made before gsl-push existed.
if [ -z "${NATS_PW_PUSH:-}" ]; then
  NATS_PW_PUSH="$(rnd)"; echo "NATS_PW_PUSH=$NATS_PW_PUSH" >> "$RUN/secrets.env"
fi
if [ -z "${NATS_PW_MIGRATE:-}" ]; then
  NATS_PW_MIGRATE="$(rnd)"; echo "NATS_PW_MIGRATE=$NATS_PW_MIGRATE" >> "$RUN/secrets.env"
fi
# The card store's roles: the cluster's administrator (creates the others), the schema owner
# (`gsl-gateway migrate`) and the gateway (read and write on the tables, nothing else).
for v in PG_PW_ADMIN PG_PW_OWNER PG_PW_GATEWAY; do
  if [ -z "${!v:-}" ]; then printf -v "$v" '%s' "$(rnd)"; echo "$v=${!v}" >> "$RUN/secrets.env"; fi
done
{
  cat <<CONF
listen: 127.0.0.1:$NATS_PORT
http: 127.0.0.1:$NATS_HTTP
server_name: gsl-local
jetstream { store_dir: "$RUN/nats" }
CONF
  # Passwords only to this step, not exported to every process the stack starts.
  GSL_GATEWAY_BIN="$BIN/gsl-gateway" NATS_PW_MIGRATE="$NATS_PW_MIGRATE" NATS_PW_GATEWAY="$NATS_PW_GATEWAY" \
    NATS_PW_CMCC="$NATS_PW_CMCC" NATS_PW_CT="$NATS_PW_CT" NATS_PW_CU="$NATS_PW_CU" \
    NATS_PW_TRINET="$NATS_PW_TRINET" NATS_PW_INTAKE="$NATS_PW_INTAKE" NATS_PW_PUSH="$NATS_PW_PUSH" \
    sh "$ROOT/scripts/nats-users-conf.sh"
} > "$RUN/nats.conf"

PIDS=()
start() { # name, command...
  local name=$1; shift
  "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
  PIDS+=($!)
}
PG_PID=""
stop_all() {
  say "stopping"
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    # PostgreSQL: a fast shutdown (SIGINT ends the sessions of services still draining; the
    # default smart shutdown would wait for them).
    if [ "${PIDS[$i]}" = "$PG_PID" ]; then kill -INT "$PG_PID" 2>/dev/null || true; continue; fi
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  say "stopped"
}
trap 'trap - EXIT; stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

wait_http() { # url, what
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  say "ERROR: $2 not ready at $1"; exit 1
}

# The simulated accounts' plan data, so every README example completes through an API: China
# Unicom's communication plans for speed tiers and rate plans for usage caps (the adapters' plan
# maps below name the same plans), as a real account would have them.
cat > "$RUN/sim.json" <<JSON
{"rules": {"cu_speed_plans": {"Tier512": 512, "Tier1024": 1024}, "cu_cap_plans": {"Cap100": 100, "Cap1024": 1024, "NoCap": -1}}}
JSON

ANCHOR=$(date +%s)
start nats "$NATS_BIN" -c "$RUN/nats.conf"
wait_http "http://127.0.0.1:$NATS_HTTP/healthz?js-enabled-only=true" nats

# PostgreSQL: initdb and postgres refuse to run as root, so as root they run as `nobody`.
PG_BIN="$(bash scripts/pg-bin.sh)"
AS_PG=()
if [ "$(id -u)" = 0 ]; then AS_PG=(setpriv --reuid=nobody --regid=nogroup --clear-groups --); fi
if [ ! -f "$RUN/pg/PG_VERSION" ]; then
  say "creating the card store's cluster ($("$PG_BIN/postgres" --version | awk '{print $3}'))"
  mkdir -p "$RUN/pg" "$RUN/pg-sock"
  printf '%s\n' "$PG_PW_ADMIN" > "$RUN/pg-pw"
  if [ "$(id -u)" = 0 ]; then chown -R nobody:nogroup "$RUN/pg" "$RUN/pg-sock" "$RUN/pg-pw"; fi
  "${AS_PG[@]}" "$PG_BIN/initdb" -D "$RUN/pg" -U gsl_admin --pwfile="$RUN/pg-pw" --auth=scram-sha-256 \
    -E UTF8 --locale=C > "$RUN/logs/initdb.log" 2>&1 || { cat "$RUN/logs/initdb.log"; exit 1; }
  rm -f "$RUN/pg-pw"
fi
mkdir -p "$RUN/pg-sock"
if [ "$(id -u)" = 0 ]; then chown nobody:nogroup "$RUN/pg-sock"; fi
start postgres "${AS_PG[@]}" "$PG_BIN/postgres" -D "$RUN/pg" -h 127.0.0.1 -p "$PG_PORT" -k "$RUN/pg-sock"
PG_PID="${PIDS[${#PIDS[@]}-1]}"
pg_admin() { PGPASSWORD="$PG_PW_ADMIN" "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U gsl_admin -d postgres -v ON_ERROR_STOP=1 -tAq "$@"; }
for _ in $(seq 1 150); do pg_admin -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
pg_admin -c 'SELECT 1' >/dev/null || { say "ERROR: PostgreSQL not ready on $PG_PORT"; exit 1; }
pg_admin <<SQL
SELECT 'CREATE ROLE gsl_owner LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gsl_owner') \\gexec
SELECT 'CREATE ROLE gsl_gateway LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gsl_gateway') \\gexec
ALTER ROLE gsl_owner PASSWORD '$PG_PW_OWNER';
ALTER ROLE gsl_gateway PASSWORD '$PG_PW_GATEWAY';
SELECT 'CREATE DATABASE gsl OWNER gsl_owner' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'gsl') \\gexec
REVOKE ALL ON DATABASE gsl FROM PUBLIC;
SQL
PG_URL_OWNER="postgres://gsl_owner:$PG_PW_OWNER@127.0.0.1:$PG_PORT/gsl"
PG_URL_GATEWAY="postgres://gsl_gateway:$PG_PW_GATEWAY@127.0.0.1:$PG_PORT/gsl"
start sim env SIM_LISTEN="127.0.0.1:$SIM_PORT" SIM_CARDS_PER_CARRIER=10000 SIM_TIME_SCALE="$SCALE" SIM_CLOCK_ANCHOR="$ANCHOR" \
  RUST_LOG="${RUST_LOG:-info}" "$BIN/carrier-sim" --config "$RUN/sim.json"
wait_http "http://127.0.0.1:$SIM_PORT/healthz" carrier-sim
NATS_URL="nats://127.0.0.1:$NATS_PORT"
say "creating the topology and the card store's schema (gsl-gateway migrate)"
GSL_NATS_URL="$NATS_URL" GSL_NATS_USER=gsl-migrate GSL_NATS_PASSWORD="$NATS_PW_MIGRATE" RUST_LOG=warn \
  GSL_DATABASE_URL="$PG_URL_OWNER" GSL_DATABASE_APP_ROLE=gsl_gateway \
  "$BIN/gsl-gateway" migrate | sed 's/^/[stack] /'
start gateway env GSL_TOPOLOGY=bind GSL_NATS_URL="$NATS_URL" GSL_NATS_USER=gateway GSL_NATS_PASSWORD="$NATS_PW_GATEWAY" \
  GSL_DATABASE_URL="$PG_URL_GATEWAY" \
  GSL_GRPC_LISTEN="127.0.0.1:$GW_PORT" GSL_ADMIN_LISTEN="127.0.0.1:$GW_ADMIN" \
  GSL_TENANT_TOKENS="$TENANT_TOKEN=acme" GSL_ADAPTER_TOKENS="$ADAPTER_TOKENS" GSL_OPERATOR_TOKEN="$OPERATOR_TOKEN" RUST_LOG="${RUST_LOG:-info}" "$BIN/gsl-gateway"
wait_http "http://127.0.0.1:$GW_ADMIN/readyz" gateway
say "registering the simulator's demo cards"
GSL_GATEWAY="http://127.0.0.1:$GW_PORT" GSL_OPERATOR_TOKEN="$OPERATOR_TOKEN" "$BIN/gslctl" cards seed-from-sim "http://127.0.0.1:$SIM_PORT" --per-carrier 2000 --tenant acme | sed 's/^/[stack] /'
declare -A USER=([cmcc]=gslcmcc [ct]=gslct [cu]=gslcu [trinet]="")
declare -A SECRET=([cmcc]=cmcc-secret [ct]=ct-secret [cu]=cu-secret [trinet]=trinet-secret)
declare -A NPW=([cmcc]="$NATS_PW_CMCC" [ct]="$NATS_PW_CT" [cu]="$NATS_PW_CU" [trinet]="$NATS_PW_TRINET")
for c in cmcc ct cu trinet; do
  start "adapter-$c" env GSL_TOPOLOGY=bind GSL_CARRIER=$c GSL_CARRIER_URL="http://127.0.0.1:$SIM_PORT/$c" GSL_CARRIER_USER="${USER[$c]}" \
    GSL_CARRIER_SECRET="${SECRET[$c]}" GSL_NATS_URL="$NATS_URL" GSL_NATS_USER="adapter-$c" GSL_NATS_PASSWORD="${NPW[$c]}" \
    GSL_GATEWAY_URL="http://127.0.0.1:$GW_PORT" GSL_ADAPTER_TOKEN="${ATOK[$c]}" GSL_ADMIN_LISTEN="127.0.0.1:${ADMIN[$c]}" \
    GSL_TIME_SCALE="$SCALE" GSL_CLOCK_ANCHOR="$ANCHOR" GSL_POLL_INTERVAL_MS=500 POD_NAME="adapter-$c-0" \
    GSL_CT_DCP_USER=gsldcp GSL_CT_DCP_PASSWORD=dcp-secret GSL_CT_DCP_KEY=k9X2m7Q4p GSL_CT_CUST_NUMBER=C0001 \
    GSL_CU_SPEED_PLANS=512=Tier512,1024=Tier1024 GSL_CU_CAP_PLANS=100=Cap100,1024=Cap1024,-1=NoCap \
    GSL_CMCC_GROUP_ID=G1 GSL_CMCC_OFFER_ID=O1 GSL_CMCC_APN_NAME=CMIOT \
    RUST_LOG="${RUST_LOG:-info}" "$BIN/gsl-adapter"
done
for c in cmcc ct cu trinet; do wait_http "http://127.0.0.1:${ADMIN[$c]}/readyz" "adapter-$c"; done
# Pushes: loopback receivers and plain http allowed, for trying it locally (docs/push.md).
start push env GSL_TOPOLOGY=bind GSL_NATS_URL="$NATS_URL" GSL_NATS_USER=gsl-push GSL_NATS_PASSWORD="$NATS_PW_PUSH" \
  GSL_ADMIN_LISTEN="127.0.0.1:$PUSH_ADMIN" GSL_PUSH_ALLOW_NETS=127.0.0.0/8 GSL_PUSH_ALLOW_HTTP=on \
  RUST_LOG="${RUST_LOG:-info}" "$BIN/gsl-push"
wait_http "http://127.0.0.1:$PUSH_ADMIN/readyz" gsl-push

cat > "$RUN/stack.env" <<ENV
GSL_GATEWAY=http://127.0.0.1:$GW_PORT
GSL_TOKEN=$TENANT_TOKEN
GSL_OPERATOR_TOKEN=$OPERATOR_TOKEN
GSL_SIM=http://127.0.0.1:$SIM_PORT
GSL_NATS_URL=$NATS_URL
GSL_NATS_INTAKE_USER=intake-acme
GSL_NATS_INTAKE_PASSWORD=$NATS_PW_INTAKE
GSL_BIN=$BIN
ENV
cat <<MSG
[stack] ready
[stack]   gateway gRPC   127.0.0.1:$GW_PORT   (tenant "acme"; token in $RUN/stack.env)
[stack]   gateway admin  http://127.0.0.1:$GW_ADMIN/metrics  /healthz  /readyz
[stack]   adapters admin http://127.0.0.1:${ADMIN[cmcc]} (cmcc) :${ADMIN[ct]} (ct) :${ADMIN[cu]} (cu) :${ADMIN[trinet]} (trinet)
[stack]   gsl-push admin http://127.0.0.1:$PUSH_ADMIN  (pushes: gslctl push --help)
[stack]   NATS           $NATS_URL  (monitoring http://127.0.0.1:$NATS_HTTP)
[stack]   PostgreSQL     127.0.0.1:$PG_PORT  database gsl (roles in $RUN/secrets.env)
[stack]   carrier-sim    http://127.0.0.1:$SIM_PORT  (admin /admin/stats)
[stack] try:  make demo      or:  set -a; . $RUN/stack.env; set +a; $BIN/gslctl list
[stack] Ctrl-C stops everything.
MSG
wait
