#!/usr/bin/env bash
# Start or stop shared stores for a team on this machine: a PostgreSQL server (Optuna's
# storage and MLflow's backend) and an MLflow tracking server, no containers needed.
#
#   bash scripts/team_stores.sh start [DIR]   # default DIR: team-stores/ in the repository
#   bash scripts/team_stores.sh stop  [DIR]
#
# Settings (environment): HOST (127.0.0.1; use the machine's address to serve a team),
# PG_PORT (5433), MLFLOW_PORT (5000). Then, on every machine:
#   export AUTOTWEAK_STORAGE=postgresql+psycopg2://autotweak@HOST:PG_PORT/optuna
#   export MLFLOW_TRACKING_URI=http://HOST:MLFLOW_PORT
#
# `start` is safe to run again: a server of DIR that is already running is kept. It
# refuses a port that something else listens on, rather than reporting that server.
set -euo pipefail
action=${1:?usage: team_stores.sh start|stop [DIR]}
dir=$(realpath -m "${2:-$(dirname "$0")/../team-stores}")  # before the cd: DIR is the caller's
cd "$(dirname "$0")/.."
host=${HOST:-127.0.0.1}
pg_port=${PG_PORT:-5433}
mlflow_port=${MLFLOW_PORT:-5000}
mlflow=.venv/bin/mlflow
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)")
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
fail() { echo "team_stores.sh: $*" >&2; exit 1; }

# Whether a server on this machine listens on TCP port $1 (any address: ours could not bind it).
listening() {
  if command -v ss >/dev/null; then
    ss -Hltn "sport = :$1" | grep -q .
  else
    timeout 2 bash -c "exec 3<>/dev/tcp/$host/$1" 2>/dev/null
  fi
}
healthy() { curl -sf --max-time 2 "http://$host:$mlflow_port/health" >/dev/null; }

# The port this DIR's PostgreSQL runs on, or nothing when it is not running.
pg_running_port() {
  as_pg "$bin/pg_ctl" -D "$dir/pg/data" status >/dev/null 2>&1 || return 0
  sed -n 4p "$dir/pg/data/postmaster.pid" 2>/dev/null
}

# The PID of this DIR's MLflow server when it is still running, or nothing.
mlflow_running_pid() {
  local pid
  pid=$(cat "$dir/mlflow.pid" 2>/dev/null) || return 0
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "mlflow server" && echo "$pid"
  return 0
}

# The port of the MLflow server with PID $1 (from its command line).
mlflow_port_of() { tr '\0' '\n' <"/proc/$1/cmdline" | sed -n '/^--port$/{n;p;q}'; }

# Before anything starts: the ports of the servers to start are free, the MLflow command exists.
preflight() {
  if [ -z "$(pg_running_port)" ] && listening "$pg_port"; then
    fail "PG_PORT=$pg_port: another server already listens on port $pg_port; choose another PG_PORT or stop that server"
  fi
  if [ -z "$(mlflow_running_pid)" ]; then
    [ -x "$mlflow" ] || fail "$PWD/$mlflow is missing: create the virtualenv first (scripts/setup.sh)"
    ! listening "$mlflow_port" || fail "MLFLOW_PORT=$mlflow_port: another server already listens on port $mlflow_port; choose another MLFLOW_PORT or stop that server"
  fi
}

start_pg() {
  local running
  running=$(pg_running_port)
  if [ -n "$running" ]; then
    [ "$running" = "$pg_port" ] || fail "the PostgreSQL server of $dir already runs on port $running, not PG_PORT=$pg_port; use PG_PORT=$running or stop it first (team_stores.sh stop $dir)"
    echo "PostgreSQL of $dir already running on port $pg_port; keeping it" >&2
    return
  fi
  mkdir -p "$dir/pg"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/pg"
  if [ ! -f "$dir/pg/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/pg/data" -A trust -U autotweak >/dev/null
  fi
  as_pg "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -w \
    -o "-p $pg_port -k $dir/pg -c listen_addresses=$host" start >/dev/null 2>&1 \
    || { tail -n 5 "$dir/pg/log" >&2 2>/dev/null; fail "PostgreSQL did not start; see $dir/pg/log"; }
}

start_mlflow() {
  local pid running_port
  pid=$(mlflow_running_pid)
  if [ -n "$pid" ]; then
    running_port=$(mlflow_port_of "$pid")
    [ "$running_port" = "$mlflow_port" ] || fail "the MLflow server of $dir (pid $pid) already runs on port $running_port, not MLFLOW_PORT=$mlflow_port; use MLFLOW_PORT=$running_port or stop it first (team_stores.sh stop $dir)"
    echo "MLflow server of $dir already running (pid $pid); keeping it" >&2
  else
    MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false nohup "$mlflow" server \
      --backend-store-uri "postgresql+psycopg2://autotweak@$host:$pg_port/mlflow" \
      --artifacts-destination "file://$dir/artifacts" \
      --host "$host" --port "$mlflow_port" --workers 1 --gunicorn-opts "--threads 8" \
      >"$dir/mlflow.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/mlflow.pid"
  fi
  for _ in $(seq 120); do
    kill -0 "$pid" 2>/dev/null || { tail -n 5 "$dir/mlflow.log" >&2 2>/dev/null; fail "the MLflow server exited; see $dir/mlflow.log"; }
    healthy && break
    sleep 1
  done
  # The server answering must be ours: it is still running once the port answers.
  healthy && kill -0 "$pid" 2>/dev/null || fail "the MLflow server did not become healthy in 120 s; see $dir/mlflow.log"
}

case "$action" in
start)
  preflight
  mkdir -p "$dir/artifacts"
  start_pg
  for db in optuna mlflow; do
    as_pg "$bin/createdb" -h "$host" -p "$pg_port" -U autotweak "$db" 2>/dev/null || true
  done
  start_mlflow
  echo "export AUTOTWEAK_STORAGE=postgresql+psycopg2://autotweak@$host:$pg_port/optuna"
  echo "export MLFLOW_TRACKING_URI=http://$host:$mlflow_port"
  ;;
stop)
  if [ -f "$dir/mlflow.pid" ]; then
    pid=$(cat "$dir/mlflow.pid")
    children=$(pgrep -P "$pid" 2>/dev/null || true)
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    # Wait until the server and its workers are gone, so that `start` may bind the port again.
    for _ in $(seq 30); do
      alive=0
      for p in $pid $children; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.5
    done
    rm -f "$dir/mlflow.pid"
  fi
  [ -f "$dir/pg/data/PG_VERSION" ] && { as_pg "$bin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1 || true; }
  echo "stopped the stores in $dir"
  ;;
*)
  echo "usage: team_stores.sh start|stop [DIR]" >&2; exit 2 ;;
esac
