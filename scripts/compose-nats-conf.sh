#!/bin/sh
# Renders /conf/nats.conf for docker compose: one NATS user per service with least privilege,
# exactly as gsl_bus::permissions says (printed by `gsl-gateway nats-user`, the same source
# `scripts/stack.sh` and the Helm values use). Passwords come from .env (scripts/compose-env.sh).
set -eu
umask 077
GW=${GSL_GATEWAY_BIN:-/usr/local/bin/gsl-gateway}
OUT=${NATS_CONF:-/conf/nats.conf}
u() { "$GW" nats-user "$@" | sed 's/^/    /'; }
{
  echo "authorization {"
  echo "  users = ["
  u migrate gsl-migrate "$NATS_PW_MIGRATE"
  u gateway gateway "$NATS_PW_GATEWAY"
  u adapter-cmcc adapter-cmcc "$NATS_PW_CMCC"
  u adapter-ct adapter-ct "$NATS_PW_CT"
  u adapter-cu adapter-cu "$NATS_PW_CU"
  u adapter-trinet adapter-trinet "$NATS_PW_TRINET"
  u intake-acme intake-acme "$NATS_PW_INTAKE"
  echo "  ]"
  echo "}"
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT"
