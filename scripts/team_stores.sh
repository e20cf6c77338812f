#!/usr/bin/env bash
# Start or stop shared stores for a team on this machine: a PostgreSQL server (Optuna's
# storage and MLflow's backend) and an MLflow tracking server, no containers needed.
#
#   bash scripts/team_stores.sh start [DIR]   # default DIR: ./team-stores
#   bash scripts/team_stores.sh stop  [DIR]
#
# Settings (environment): HOST (127.0.0.1; use the machine's address to serve a team),
# PG_PORT (5433), MLFLOW_PORT (5000). Then, on every machine:
#   export AUTOTWEAK_STORAGE=postgresql+psycopg2://autotweak@HOST:PG_PORT/optuna
#   export MLFLOW_TRACKING_URI=http://HOST:MLFLOW_PORT
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:?usage: team_stores.sh start|stop [DIR]}
dir=$(realpath -m "${2:-team-stores}")
host=${HOST:-127.0.0.1}
pg_port=${PG_PORT:-5433}
mlflow_port=${MLFLOW_PORT:-5000}
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)")
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$action" in
start)
  mkdir -p "$dir/pg" "$dir/artifacts"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/pg"
  if [ ! -f "$dir/pg/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/pg/data" -A trust -U autotweak >/dev/null
  fi
  as_pg "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -w \
    -o "-p $pg_port -k $dir/pg -c listen_addresses=$host" start >/dev/null
  for db in optuna mlflow; do
    as_pg "$bin/createdb" -h "$host" -p "$pg_port" -U autotweak "$db" 2>/dev/null || true
  done
  MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false nohup .venv/bin/mlflow server \
    --backend-store-uri "postgresql+psycopg2://autotweak@$host:$pg_port/mlflow" \
    --artifacts-destination "file://$dir/artifacts" \
    --host "$host" --port "$mlflow_port" --workers 1 --gunicorn-opts "--threads 8" \
    >"$dir/mlflow.log" 2>&1 &
  echo $! >"$dir/mlflow.pid"
  for _ in $(seq 120); do
    curl -sf "http://$host:$mlflow_port/health" >/dev/null && break
    sleep 1
  done
  curl -sf "http://$host:$mlflow_port/health" >/dev/null || { echo "MLflow server failed; see $dir/mlflow.log" >&2; exit 1; }
  echo "export AUTOTWEAK_STORAGE=postgresql+psycopg2://autotweak@$host:$pg_port/optuna"
  echo "export MLFLOW_TRACKING_URI=http://$host:$mlflow_port"
  ;;
stop)
  [ -f "$dir/mlflow.pid" ] && { pkill -TERM -P "$(cat "$dir/mlflow.pid")" 2>/dev/null || true; kill "$(cat "$dir/mlflow.pid")" 2>/dev/null || true; rm -f "$dir/mlflow.pid"; }
  as_pg "$bin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null || true
  echo "stopped the stores in $dir"
  ;;
*)
  echo "usage: team_stores.sh start|stop [DIR]" >&2; exit 2 ;;
esac
