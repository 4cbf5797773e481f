#!/usr/bin/env bash
# Spark's Thrift JDBC/ODBC server (HiveServer2 protocol) of the pyspark wheel on
# 127.0.0.1, with Delta and the project's embedded Hive metastore, so any JDBC
# client (beeline, BI tools) can query the bronze/silver/gold tables in SQL.
#
#   infra/thrift-server.sh start METASTORE [PORT]    # default port 10000
#   infra/thrift-server.sh stop
#
# METASTORE is the folder of storage.metastore (the Derby database): stop every
# job using it first, Derby admits one JVM at a time. Then, e.g.:
#   $SPARK_HOME/bin/beeline -u jdbc:hive2://127.0.0.1:10000 -e 'SELECT count(*) FROM gold.voter_scores'
#
# Environment: PYTHON (default .venv/bin/python), MASTER (default local[2]),
# DRIVER_MEMORY (default 2g), VOTELAKE_SERVER_DIR (pid and log, default .cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
RUN=${VOTELAKE_SERVER_DIR:-.cluster}
NAME=thrift-server
source infra/server-common.sh
mkdir -p "$RUN"

start() {
  local metastore=${1:?usage: $0 start METASTORE [PORT]} port=${2:-10000}
  # HiveServer2 opens each JDBC session with a class loader that does not see
  # --jars (ClassNotFoundException: ...delta.catalog.DeltaCatalog at connect):
  # delta-spark goes on the driver's own classpath as well.
  local classpath extra=()
  classpath=$("$PY" -c 'from votelake import jars; print(":".join(str(j) for j in jars.local_jars()))')
  [ -n "$classpath" ] && extra+=(--driver-class-path "$classpath")
  # The --hiveconf options after spark-internal go to HiveServer2.
  start_server "$metastore" org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 \
    "HiveThriftServer2 started" "jdbc:hive2://127.0.0.1:$port" "${extra[@]}" spark-internal \
    --hiveconf hive.server2.thrift.port="$port" --hiveconf hive.server2.thrift.bind.host=127.0.0.1
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop_server ;;
  *) echo "usage: $0 start METASTORE [PORT] | stop" >&2; exit 2 ;;
esac
