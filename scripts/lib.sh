# Shared by scripts/test, scripts/demo and scripts/chaos. Idempotent: a second run reuses what is there.
step() { printf '\n==> %s\n' "$*" >&2; }

ensure_venv() {  # $1: extras, e.g. "dev" or "openbao"
  local extras="$1" python="${PYTHON:-python3}" stamp=".venv/.installed-$1"
  if [ ! -x .venv/bin/python ]; then
    step "creating .venv"
    "$python" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    step "installing rotator[$extras]"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
  fi
}

ensure_postgres_tools() {  # the server binaries (initdb, pg_ctl), installed if missing
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
  then return 0; fi
  step "installing PostgreSQL"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  step "starting PostgreSQL"
  ensure_postgres_tools
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.5
  done
  pg_isready -h 127.0.0.1 -p 5432
  # Trust auth and the `test` database are what the suite expects (as on the CI machine).
  psql -h 127.0.0.1 -U postgres -d postgres -tc "SELECT 1 FROM pg_database WHERE datname='test'" \
    | grep -q 1 || psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE test"
}

ensure_grafana_schema() {  # @grafana/schema + TypeScript for the dashboard's type check
  local dir=.cache/grafana-schema
  [ -x "$dir/node_modules/.bin/tsc" ] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    step "npm not found: the Grafana dashboard's schema check will be skipped"
    return 0
  fi
  step "installing @grafana/schema and TypeScript into $dir"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --silent typescript@5 @grafana/schema@13.2.3 \
    || step "npm install failed: the Grafana dashboard's schema check will be skipped"
}
