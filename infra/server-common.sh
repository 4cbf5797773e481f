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
from votelake.session import server_conf

conf = server_conf(Path(sys.argv[1]))
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

# Starts the server's class with spark-submit in the background and waits until
# its log says it is ready.
# Args: METASTORE CLASS READY_LINE URL [further spark-submit arguments...].
start_server() {
  local metastore=$1 class=$2 ready=$3 url=$4
  shift 4
  if [ -f "$RUN/$NAME.pid" ] && kill -0 "$(cat "$RUN/$NAME.pid")" 2>/dev/null; then
    echo "error: $NAME already running (pid $(cat "$RUN/$NAME.pid"))" >&2
    return 1
  fi
  mkdir -p "$metastore"
  local args
  mapfile -t args < <(server_submit_args "$metastore")
  # spark-submit knows these classes: they need no application file (spark-internal).
  nohup "$SPARK_HOME/bin/spark-submit" --class "$class" --name "votelake $NAME" \
    --master "${MASTER:-local[2]}" --driver-memory "${DRIVER_MEMORY:-2g}" \
    "${args[@]}" --conf spark.ui.enabled=false "$@" >"$RUN/$NAME.log" 2>&1 &
  echo $! >"$RUN/$NAME.pid"
  wait_for "$RUN/$NAME.log" "$ready" "$(cat "$RUN/$NAME.pid")"
  echo "$NAME: running (pid $(cat "$RUN/$NAME.pid"), log $RUN/$NAME.log) at $url"
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
