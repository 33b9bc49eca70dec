#!/usr/bin/env bash
# Prints the `users:` entries of deploy/k8s/nats-values.yaml from the permission sets in the code
# (gsl_bus::permissions). Paste them under `authorization: users:` after a permission change;
# tests/k8s.rs fails until the file matches.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
B="${GSL_GATEWAY_BIN:-target/debug/gsl-gateway}"
[ -x "$B" ] || cargo build -q -p gsl-gateway --bins
for r in "migrate gsl-migrate \$MIGRATE_PASSWORD" "gateway gateway \$GATEWAY_PASSWORD" "push gsl-push \$PUSH_PASSWORD" \
  "adapter-cmcc adapter-cmcc \$ADAPTER_CMCC_PASSWORD" "adapter-ct adapter-ct \$ADAPTER_CT_PASSWORD" \
  "adapter-cu adapter-cu \$ADAPTER_CU_PASSWORD" "adapter-trinet adapter-trinet \$ADAPTER_TRINET_PASSWORD" \
  "intake-acme intake-acme \$INTAKE_ACME_PASSWORD"; do
  # shellcheck disable=SC2086
  "$B" nats-user $r --yaml
done
