#!/usr/bin/env bash
# A real Spark standalone cluster on this machine (master + one worker on
# 127.0.0.1), started from the launch scripts that come with the pyspark wheel.
#
#   infra/standalone.sh start [CORES] [MEMORY]   # default: all cores, 8g
#   infra/standalone.sh status
#   infra/standalone.sh stop
#
# Then run any job against it:
#   votelake pipeline --set spark.master=spark://127.0.0.1:7077
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SPARK_HOME=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME
RUN=${VOTELAKE_CLUSTER_DIR:-.cluster}
MASTER_PORT=${MASTER_PORT:-7077}
MASTER_UI=${MASTER_UI:-8080}
WORKER_UI=${WORKER_UI:-8081}
mkdir -p "$RUN"

start() {
  local cores=${1:-$(nproc)} memory=${2:-8g}
  nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
    --host 127.0.0.1 --port "$MASTER_PORT" --webui-port "$MASTER_UI" >"$RUN/master.log" 2>&1 &
  echo $! >"$RUN/master.pid"
  for _ in $(seq 60); do grep -q "I have been elected leader" "$RUN/master.log" && break; sleep 1; done
  nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
    --host 127.0.0.1 --cores "$cores" --memory "$memory" --webui-port "$WORKER_UI" \
    --work-dir "$PWD/$RUN/work" "spark://127.0.0.1:$MASTER_PORT" >"$RUN/worker.log" 2>&1 &
  echo $! >"$RUN/worker.pid"
  for _ in $(seq 60); do grep -q "Successfully registered with master" "$RUN/worker.log" && break; sleep 1; done
  status
}

status() {
  for role in master worker; do
    if [ -f "$RUN/$role.pid" ] && kill -0 "$(cat "$RUN/$role.pid")" 2>/dev/null; then
      echo "$role: running (pid $(cat "$RUN/$role.pid"), log $RUN/$role.log)"
    else
      echo "$role: stopped"
    fi
  done
  echo "master URL: spark://127.0.0.1:$MASTER_PORT  UI: http://127.0.0.1:$MASTER_UI"
}

stop() {
  for role in worker master; do
    [ -f "$RUN/$role.pid" ] && kill "$(cat "$RUN/$role.pid")" 2>/dev/null || true
    rm -f "$RUN/$role.pid"
  done
  status
}

case "${1:-status}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start [CORES] [MEMORY] | status | stop" >&2; exit 2 ;;
esac
