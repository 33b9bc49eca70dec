#!/usr/bin/env bash
# Writes .env for docker compose with freshly generated credentials (kept if .env exists).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f .env ] && { echo ".env exists: keeping its credentials"; exit 0; }
rnd() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
{
  echo "GSL_TENANT_TOKENS=demo-$(rnd)=acme"
  for c in CMCC CT CU TRINET; do echo "GSL_ADAPTER_TOKEN_$c=adapter-$(rnd)"; done
  echo "GSL_OPERATOR_TOKEN=operator-$(rnd)"
} > .env
chmod 600 .env
echo "wrote .env"
