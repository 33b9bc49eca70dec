#!/usr/bin/env bash
# Writes .env for docker compose with freshly generated credentials (kept if .env exists).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -f .env ]; then
  grep -q '^NATS_PW_MIGRATE=' .env || { echo ".env predates NATS users: delete it and run again" >&2; exit 1; }
  grep -q '^PG_PW_GATEWAY=' .env || { echo ".env predates the card store: delete it and run again" >&2; exit 1; }
  echo ".env exists: keeping its credentials"; exit 0
fi
rnd() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
{
  echo "GSL_TENANT_TOKENS=demo-$(rnd)=acme"
  for c in CMCC CT CU TRINET; do echo "GSL_ADAPTER_TOKEN_$c=adapter-$(rnd)"; done
  echo "GSL_OPERATOR_TOKEN=operator-$(rnd)"
  # NATS passwords, one user per service (scripts/nats-users-conf.sh).
  for u in MIGRATE GATEWAY CMCC CT CU TRINET INTAKE; do echo "NATS_PW_$u=$(rnd)"; done
  # PostgreSQL: the administrator, the schema owner, the gateway.
  for u in ADMIN OWNER GATEWAY; do echo "PG_PW_$u=$(rnd)"; done
} > .env
chmod 600 .env
echo "wrote .env"
