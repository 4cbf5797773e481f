#!/usr/bin/env bash
# The whole pipeline on a real 2-worker standalone cluster, with the project's
# Python environment shipped to the executors as a packed venv (--archives).
#
#   infra/cluster-pipeline.sh [VOTERS]      # default 3000 voters
#
# Steps: pack the environment (infra/pack-env.sh, only when the archive is
# absent; REPACK=1 forces it), start a master and 2 workers on 127.0.0.1 on free
# ports with work dirs under a temporary folder, generate a synthetic state
# locally, run every job with its own spark-submit (ingest, build, train,
# score, segment, universes, allocate, metrics, maintain), then check from a fresh
# spark-submit that the executors ran the shipped Python (infra/cluster_check.py)
# and that gold.voter_scores has its rows. Prints each step's exit code and
# seconds; stops the cluster on exit, whatever happened.
#
# Environment: PYTHON (driver interpreter, default .venv/bin/python),
# CLUSTER_ROOT (data and work folders, default a new /tmp/votelake-cluster-run.XXXXXX;
# deleted at the end unless KEEP=1), EXECUTOR_MEMORY (default 1g),
# DRIVER_MEMORY (default 2g).
# Exit code: 0 when every job and the check succeeded, else 1.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VOTERS=${1:-3000}
PY=$(realpath -s "${PYTHON:-.venv/bin/python}")
ARCHIVE=.cluster/votelake-env.tar.gz
ROOT=${CLUSTER_ROOT:-$(mktemp -d /tmp/votelake-cluster-run.XXXXXX)}
EXECUTOR_MEMORY=${EXECUTOR_MEMORY:-1g}
DRIVER_MEMORY=${DRIVER_MEMORY:-2g}
SPARK_HOME=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
mkdir -p "$ROOT/logs"

SUMMARY=()
record() { SUMMARY+=("$(printf '%-10s exit %-3s %6ss' "$1" "$2" "$3")"); }
summary() {
  echo "=== cluster pipeline summary (logs: $ROOT/logs) ==="
  printf '%s\n' "${SUMMARY[@]}"
}

# Free ports, asked of the kernel, so runs beside other clusters do not collide.
read -r MASTER_PORT MASTER_UI < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
export MASTER_PORT MASTER_UI WORKER_UI=0
export VOTELAKE_CLUSTER_DIR=$ROOT/run VOTELAKE_CLUSTER_WORK=$ROOT/workers PYTHON=$PY
MASTER=spark://127.0.0.1:$MASTER_PORT

cleanup() {
  local rc=$?
  infra/standalone.sh stop >/dev/null 2>&1 || true
  summary
  if [ -z "${KEEP:-}" ]; then rm -rf "$ROOT"; else echo "kept $ROOT"; fi
  exit "$rc"
}
trap cleanup EXIT

t0=$(date +%s)
if [ ! -f "$ARCHIVE" ] || [ -n "${REPACK:-}" ]; then
  infra/pack-env.sh "$ARCHIVE" >"$ROOT/logs/pack.log" 2>&1 || { record pack $? $(( $(date +%s) - t0 )); exit 1; }
fi
record pack 0 $(( $(date +%s) - t0 ))
echo "environment archive: $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1))"

t0=$(date +%s)
# One core per worker: two executors, one on each, as on two machines.
infra/standalone.sh start 2 1 "$EXECUTOR_MEMORY" >"$ROOT/logs/cluster.log" 2>&1 \
  || { record cluster $? $(( $(date +%s) - t0 )); cat "$ROOT/logs/cluster.log"; exit 1; }
record cluster 0 $(( $(date +%s) - t0 ))
cat "$ROOT/logs/cluster.log"

CONF=$ROOT/conf.yaml
DATA=$ROOT/data
# A config that extends the packaged local.yaml (its universes, allocation,
# rules) with every path under $DATA and a tiny model.
"$PY" - "$CONF" "$DATA" "$MASTER" "$VOTERS" "$DRIVER_MEMORY" <<'PY'
import sys
from pathlib import Path

import yaml

conf, data, master, voters, driver_memory = sys.argv[1:]
data = Path(data)
settings = {
    "extends": "local",
    "spark": {"master": master, "shuffle_partitions": 2, "driver_memory": driver_memory},
    "storage": {"lakehouse": str(data / "lakehouse"), "metastore": str(data / "metastore")},
    "mlflow": {"tracking_uri": f"sqlite:///{data / 'mlflow.db'}", "artifact_root": str(data / "mlartifacts")},
    "synth": {"voters": int(voters), "out": str(data / "synth"), "partitions": 2},
    "landing": str(data / "synth" / "landing"),
    "quality": {"results_dir": str(data / "quality")},
    "universes": {"exports": str(data / "exports")},
    "model": {"gbt_max_iter": 5, "bootstrap": 50, "uplift_folds": 2},
}
Path(conf).write_text(yaml.safe_dump(settings, sort_keys=False))
PY

# The synthetic state is the input files a real run would find; made locally.
t0=$(date +%s)
set +e
"$PY" -m votelake.cli synth --conf "$CONF" --set spark.master=local[2] >"$ROOT/logs/synth.log" 2>&1
rc=$?
set -e
record synth $rc $(( $(date +%s) - t0 ))
[ "$rc" -eq 0 ] || { tail -30 "$ROOT/logs/synth.log"; exit 1; }

read -r -a JARS < <("$PY" -m votelake.jars submit-args)
submit() {
  # The driver runs here (client mode) with the dev venv's Python; executors
  # unpack the archive into their work dir as ./environment and run its Python.
  "$SPARK_HOME/bin/spark-submit" --master "$MASTER" \
    --driver-memory "$DRIVER_MEMORY" --executor-memory "$EXECUTOR_MEMORY" \
    --archives "$ARCHIVE#environment" \
    --conf spark.pyspark.python=./environment/bin/python \
    --conf spark.pyspark.driver.python="$PY" \
    --conf spark.ui.enabled=false \
    "${JARS[@]}" "$@"
}

for job in ingest build train score segment universes allocate metrics maintain; do
  t0=$(date +%s)
  set +e
  submit "jobs/$job.py" --conf "$CONF" >"$ROOT/logs/$job.log" 2>&1
  rc=$?
  set -e
  record "$job" "$rc" $(( $(date +%s) - t0 ))
  if [ "$rc" -ne 0 ]; then
    echo "job $job failed (exit $rc); last lines of $ROOT/logs/$job.log:"
    tail -40 "$ROOT/logs/$job.log"
    exit 1
  fi
  grep "^\[votelake\] $job:" "$ROOT/logs/$job.log" | cut -c1-300 || true
done

# A fresh application: waits for both executors before its first task.
t0=$(date +%s)
set +e
submit --conf spark.scheduler.minRegisteredResourcesRatio=1.0 \
  --conf spark.scheduler.maxRegisteredResourcesWaitingTime=120s \
  infra/cluster_check.py --work-root "$VOTELAKE_CLUSTER_WORK" --repo "$REPO" --conf "$CONF" \
  --expect-executors 2 >"$ROOT/logs/check.log" 2>&1
rc=$?
set -e
record check "$rc" $(( $(date +%s) - t0 ))
grep -E "^(executor python|tasks ran|gold\.|FAIL|cluster check)" "$ROOT/logs/check.log" || tail -40 "$ROOT/logs/check.log"
[ "$rc" -eq 0 ] || exit 1
echo "cluster pipeline: OK"
