#!/bin/sh
# Prints the NATS `authorization` block: one user per service with least privilege, exactly as
# gsl_bus::permissions says (each entry printed by `gsl-gateway nats-user`). Used by
# `scripts/stack.sh` (make up) and docker compose alike; the Helm values are generated from the
# same source (`scripts/nats-values-users.sh`). Passwords come from NATS_PW_* in the environment.
set -eu
GW=${GSL_GATEWAY_BIN:-/usr/local/bin/gsl-gateway}
u() { "$GW" nats-user "$@" | sed 's/^/    /'; }
echo "authorization {"
echo "  users = ["
u migrate gsl-migrate "$NATS_PW_MIGRATE"
u gateway gateway "$NATS_PW_GATEWAY"
u push gsl-push "$NATS_PW_PUSH"
u adapter-cmcc adapter-cmcc "$NATS_PW_CMCC"
u adapter-ct adapter-ct "$NATS_PW_CT"
u adapter-cu adapter-cu "$NATS_PW_CU"
u adapter-trinet adapter-trinet "$NATS_PW_TRINET"
u intake-acme intake-acme "$NATS_PW_INTAKE"
echo "  ]"
echo "}"
