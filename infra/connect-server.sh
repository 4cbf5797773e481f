#!/usr/bin/env bash
# The Spark Connect server of the pyspark wheel on 127.0.0.1, with Delta and the
# project's embedded Hive metastore, so clients see the bronze/silver/gold tables.
#
#   infra/connect-server.sh start METASTORE [PORT]   # default port 15002
#   infra/connect-server.sh stop
#
# METASTORE is the folder of storage.metastore (the Derby database): stop every
# job using it first, Derby admits one JVM at a time. Then, e.g.:
#   votelake run score --set spark.remote=sc://127.0.0.1:15002
#
# Environment: PYTHON (default .venv/bin/python), MASTER (default local[2]),
# DRIVER_MEMORY (default 2g), VOTELAKE_SERVER_DIR (pid and log, default .cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
RUN=${VOTELAKE_SERVER_DIR:-.cluster}
NAME=connect-server
source infra/server-common.sh
mkdir -p "$RUN"

start() {
  local metastore=${1:?usage: $0 start METASTORE [PORT]} port=${2:-15002}
  start_server "$metastore" org.apache.spark.sql.connect.service.SparkConnectServer \
    "Spark Connect server started" "sc://127.0.0.1:$port" \
    --conf spark.connect.grpc.binding.address=127.0.0.1 --conf spark.connect.grpc.binding.port="$port"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop_server ;;
  *) echo "usage: $0 start METASTORE [PORT] | stop" >&2; exit 2 ;;
esac
