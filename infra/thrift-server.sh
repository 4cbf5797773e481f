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
  if [ -f "$RUN/$NAME.pid" ] && kill -0 "$(cat "$RUN/$NAME.pid")" 2>/dev/null; then
    echo "error: $NAME already running (pid $(cat "$RUN/$NAME.pid"))" >&2
    return 1
  fi
  mkdir -p "$metastore"
  local args
  mapfile -t args < <(server_submit_args "$metastore")
  # HiveServer2 opens each JDBC session with a class loader that does not see
  # --jars (ClassNotFoundException: ...delta.catalog.DeltaCatalog at connect):
  # delta-spark goes on the driver's own classpath as well.
  local classpath
  classpath=$("$PY" -c 'from votelake import jars; print(":".join(str(j) for j in jars.local_jars()))')
  [ -n "$classpath" ] && args+=(--driver-class-path "$classpath")
  # spark-submit knows this class: it needs no application file (spark-internal);
  # the --hiveconf options after it go to HiveServer2.
  nohup "$SPARK_HOME/bin/spark-submit" --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 \
    --name "votelake Thrift JDBC server" --master "${MASTER:-local[2]}" --driver-memory "${DRIVER_MEMORY:-2g}" \
    "${args[@]}" --conf spark.ui.enabled=false \
    spark-internal \
    --hiveconf hive.server2.thrift.port="$port" --hiveconf hive.server2.thrift.bind.host=127.0.0.1 \
    >"$RUN/$NAME.log" 2>&1 &
  echo $! >"$RUN/$NAME.pid"
  wait_for "$RUN/$NAME.log" "HiveThriftServer2 started" "$(cat "$RUN/$NAME.pid")"
  echo "$NAME: running (pid $(cat "$RUN/$NAME.pid"), log $RUN/$NAME.log) at jdbc:hive2://127.0.0.1:$port"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop_server ;;
  *) echo "usage: $0 start METASTORE [PORT] | stop" >&2; exit 2 ;;
esac
