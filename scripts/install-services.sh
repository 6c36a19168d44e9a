#!/usr/bin/env bash
# Installs what the service-backed integration tests start, idempotently (cheap when already there):
#   1. PostgreSQL server binaries (Debian's `postgresql` package; tests run initdb/pg_ctl themselves,
#      in a temp dir on a loopback port, and never touch the package's own cluster);
#   2. the Python extras those tests import: psycopg (postgres), s3fs + boto3 (s3), moto (dev).
# Without root/apt the PostgreSQL step is skipped with a note; the tests then skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-.venv/bin/python}"

have_postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }

# 1. PostgreSQL
if have_postgres; then
    echo "install-services: PostgreSQL present ($(ls -d /usr/lib/postgresql/*/bin | tail -1))"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "install-services: installing PostgreSQL (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    have_postgres || { echo "install-services: postgresql installed but no initdb found" >&2; exit 1; }
elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "install-services: installing PostgreSQL (sudo apt)"
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
else
    echo "install-services: cannot install PostgreSQL here (no root/apt); PostgreSQL tests will skip"
fi

# 2. Python extras (only when one is missing: pip resolves slowly)
if [ -x "$PY" ]; then
    if "$PY" -c "import psycopg, s3fs, boto3, moto.server" >/dev/null 2>&1; then
        echo "install-services: python extras present"
    else
        echo "install-services: installing python extras s3, postgres, dev"
        "$PY" -m pip install -q -e '.[dev,s3,postgres]'
    fi
else
    echo "install-services: no $PY yet (run 'make install' first); skipped python extras"
fi
