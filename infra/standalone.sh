#!/usr/bin/env bash
# A real Spark standalone cluster on this machine: a master and N workers on
# 127.0.0.1, started with the launch classes of the pyspark wheel (it has no
# sbin start scripts that work without a full Spark distribution).
#
#   infra/standalone.sh start [WORKERS] [CORES] [MEMORY]   # default: 2 workers, nproc/WORKERS cores and 2g each
#   infra/standalone.sh status
#   infra/standalone.sh workdir                          # prints the workers' root folder
#   infra/standalone.sh stop                             # stops them and deletes the work folders
#
# Each worker has its own --work-dir (where its executors run and unpack what
# spark-submit ships, e.g. --archives) in a temporary folder outside the
# repository, so executors share no files with the driver's checkout.
#
# Environment:
#   PYTHON               interpreter whose pyspark is the cluster's Spark (default .venv/bin/python)
#   CLUSTER_SPARK_HOME   the cluster's Spark install instead (e.g. the pyspark of an unpacked env)
#   VOTELAKE_CLUSTER_DIR pid files and logs (default .cluster)
#   VOTELAKE_CLUSTER_WORK the workers' root folder (default: a new mktemp -d folder under /tmp)
#   MASTER_PORT, MASTER_UI  the master's RPC and web UI ports (default 7077, 8080)
#   WORKER_UI            the first worker's web UI port, the next ones count up (default 8081; 0 = any free port)
#   KEEP_WORK=1          stop leaves the work folders in place (executor logs, for a post-mortem)
#
# Then run any job against it, e.g.:
#   votelake pipeline --set spark.master=spark://127.0.0.1:7077
# or with the environment shipped to the executors: see infra/cluster-pipeline.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [ -n "${CLUSTER_SPARK_HOME:-}" ]; then
  SPARK_HOME=$CLUSTER_SPARK_HOME
else
  SPARK_HOME=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
fi
export SPARK_HOME
RUN=${VOTELAKE_CLUSTER_DIR:-.cluster}
MASTER_PORT=${MASTER_PORT:-7077}
MASTER_UI=${MASTER_UI:-8080}
WORKER_UI=${WORKER_UI:-8081}
mkdir -p "$RUN"

# Waits until the log has the line, or the process died, or 90 s passed.
wait_for() {
  local log=$1 line=$2 pid=$3
  for _ in $(seq 90); do
    grep -q "$line" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "error: process $pid died; see $log" >&2; tail -20 "$log" >&2; return 1; }
    sleep 1
  done
  echo "error: no '$line' in $log after 90 s" >&2
  return 1
}

start() {
  local workers=${1:-2}
  local cores=${2:-$(( $(nproc) / workers > 0 ? $(nproc) / workers : 1 ))} memory=${3:-2g}
  if [ -f "$RUN/master.pid" ] && kill -0 "$(cat "$RUN/master.pid")" 2>/dev/null; then
    echo "error: a cluster of $RUN is already running (infra/standalone.sh stop first)" >&2
    return 1
  fi
  local work=${VOTELAKE_CLUSTER_WORK:-$(mktemp -d /tmp/votelake-cluster.XXXXXX)}
  mkdir -p "$work"
  echo "$work" >"$RUN/work-root"
  echo "$MASTER_PORT" >"$RUN/master-port"
  nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
    --host 127.0.0.1 --port "$MASTER_PORT" --webui-port "$MASTER_UI" >"$RUN/master.log" 2>&1 &
  echo $! >"$RUN/master.pid"
  wait_for "$RUN/master.log" "I have been elected leader" "$(cat "$RUN/master.pid")"
  for i in $(seq "$workers"); do
    local ui=$(( WORKER_UI == 0 ? 0 : WORKER_UI + i - 1 ))
    mkdir -p "$work/worker-$i/work" "$work/worker-$i/local"
    # --port 0: any free RPC port. SPARK_LOCAL_DIRS: shuffle and spill files of
    # this worker's executors beside its work dir, not in a shared /tmp folder.
    SPARK_LOCAL_DIRS="$work/worker-$i/local" nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      --host 127.0.0.1 --port 0 --webui-port "$ui" --cores "$cores" --memory "$memory" \
      --work-dir "$work/worker-$i/work" "spark://127.0.0.1:$MASTER_PORT" >"$RUN/worker-$i.log" 2>&1 &
    echo $! >"$RUN/worker-$i.pid"
  done
  for i in $(seq "$workers"); do
    wait_for "$RUN/worker-$i.log" "Successfully registered with master" "$(cat "$RUN/worker-$i.pid")"
  done
  status
}

status() {
  local role
  for pidfile in "$RUN"/master.pid "$RUN"/worker-*.pid; do
    [ -f "$pidfile" ] || continue
    role=$(basename "$pidfile" .pid)
    if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "$role: running (pid $(cat "$pidfile"), log $RUN/$role.log)"
    else
      echo "$role: stopped"
    fi
  done
  echo "master URL: spark://127.0.0.1:$(cat "$RUN/master-port" 2>/dev/null || echo "$MASTER_PORT")"
  [ -f "$RUN/work-root" ] && echo "work dirs: $(cat "$RUN/work-root")/worker-*/work"
  return 0
}

stop() {
  local pid
  # Workers first: they kill their executors; then the master.
  for pidfile in "$RUN"/worker-*.pid "$RUN"/master.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
  if [ -f "$RUN/work-root" ] && [ -z "${KEEP_WORK:-}" ]; then
    rm -rf "$(cat "$RUN/work-root")"
    rm -f "$RUN/work-root"
  fi
  status
}

case "${1:-status}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  workdir) cat "$RUN/work-root" ;;
  *) echo "usage: $0 start [WORKERS] [CORES] [MEMORY] | status | workdir | stop" >&2; exit 2 ;;
esac
