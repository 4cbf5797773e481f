# Shared by infra/connect-server.sh and infra/thrift-server.sh (sourced, not run):
# how a long-running Spark server is started with Delta and the project's
# embedded Hive metastore, and how it is stopped.
#
# Expects: PY (the venv's python), RUN (pid/log folder), NAME (server name).

SPARK_HOME=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME

# The spark-submit options every server gets: delta-spark's jars, the Delta
# extension and catalog, the session settings of votelake.session, and the
# same Derby metastore conf as build_spark (one source: session.py itself).
# Args: the metastore folder. Prints one option per line.
server_submit_args() {
  "$PY" - "$1" <<'PY'
import sys
from pathlib import Path

from votelake import jars
from votelake.session import BASE_CONF, DELTA_CATALOG, DELTA_EXTENSION, RUNTIME_CONF, metastore_conf

metastore = Path(sys.argv[1]).resolve()
conf = {**BASE_CONF, **RUNTIME_CONF, "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG, **metastore_conf(metastore)}
# Derby writes derby.log where the JVM starts unless told otherwise.
conf["spark.driver.extraJavaOptions"] += f" -Dderby.system.home={metastore}"
for arg in jars.submit_args():
    print(arg)
for key, value in conf.items():
    print("--conf")
    print(f"{key}={value}")
PY
}

# Waits until the log has the line, or the process died, or 180 s passed.
wait_for() {
  local log=$1 line=$2 pid=$3
  for _ in $(seq 180); do
    grep -q "$line" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "error: $NAME (pid $pid) died; see $log" >&2; tail -30 "$log" >&2; return 1; }
    sleep 1
  done
  echo "error: no '$line' in $log after 180 s" >&2
  return 1
}

stop_server() {
  [ -f "$RUN/$NAME.pid" ] || { echo "$NAME: not running"; return 0; }
  local pid
  pid=$(cat "$RUN/$NAME.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$RUN/$NAME.pid"
  echo "$NAME: stopped"
}
