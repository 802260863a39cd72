#!/usr/bin/env bash
# Install everything (Debian's chromium, postgresql and redis-server, a virtualenv with labeler, its worker, deploy and
# test extras), start a throwaway PostgreSQL server (tests/test_postgres.py) and a throwaway Redis
# (tests/test_deployment.py), and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test,worker,deploy]'

# A throwaway PostgreSQL cluster in a temporary folder on a free loopback port, removed on exit.
# initdb refuses to run as root, so as root the server runs as Debian's postgres user.
PG_DIR=""
PG_BIN=""
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
stop_postgres() {
  if [ -n "$PG_DIR" ]; then
    [ -f "$PG_DIR/data/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1
    rm -rf "$PG_DIR"
  fi
  return 0
}
start_postgres() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || return 1
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/labeler-pg.XXXXXX") || return 1
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR" || return 1; fi
  local port
  port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || return 1
  as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --encoding=UTF8 --no-sync \
    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/data/server.log" -w -t 60 \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
    || { cat "$PG_DIR/data/server.log" >&2; return 1; }
  export LABELER_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
}

# A throwaway Redis (no persistence) in a temporary folder on a free loopback port, removed on exit.
REDIS_DIR=""
stop_redis() {
  if [ -n "$REDIS_DIR" ]; then
    local pid
    pid=$(cat "$REDIS_DIR/redis.pid" 2>/dev/null) && kill "$pid" 2>/dev/null \
      && for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -rf "$REDIS_DIR"
  fi
  return 0
}
start_redis() {
  command -v redis-server >/dev/null 2>&1 || return 1
  REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/labeler-redis.XXXXXX") || return 1
  local port
  port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || return 1
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --dir "$REDIS_DIR" \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" || return 1
  for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$port" ping >/dev/null 2>&1 || { cat "$REDIS_DIR/redis.log" >&2; return 1; }
  export LABELER_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
}
trap 'stop_redis; stop_postgres' EXIT
if ! start_postgres; then
  echo "warning: could not start a PostgreSQL server; tests/test_postgres.py and tests/test_deployment.py will be skipped" >&2
fi
if ! start_redis; then
  echo "warning: could not start a Redis server; tests/test_deployment.py will be skipped" >&2
fi

.venv/bin/python -m pytest "$@"
