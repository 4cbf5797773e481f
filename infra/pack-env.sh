#!/usr/bin/env bash
# Pack the project's Python environment for Spark executors (Spark's documented
# way for Python: a packed virtualenv shipped with --archives).
#
#   infra/pack-env.sh [OUT]      # default OUT: .cluster/votelake-env.tar.gz
#
# Builds the project's wheel, installs it (and its pinned dependencies) into a
# fresh venv under .cluster/env-build/, adds delta-spark's jars to it, and packs
# it with venv-pack. venv-pack refuses editable installs, so the development
# venv (.venv, `pip install -e`) cannot be packed itself.
#
# Then:
#   spark-submit --archives .cluster/votelake-env.tar.gz#environment \
#     --conf spark.pyspark.python=./environment/bin/python ...
#
# Environment: PYTHON (default .venv/bin/python; needs venv-pack, from the dev
# extra) is the interpreter that builds the wheel and the venv: the packed venv
# links to the same base Python, which every machine of the cluster must have
# at the same path (true on this machine; on a real cluster, build on the
# cluster's image).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-.cluster/votelake-env.tar.gz}
BUILD=.cluster/env-build
start=$(date +%s)

rm -rf dist "$BUILD"
mkdir -p "$(dirname "$OUT")"
"$PY" -m pip wheel --quiet --no-deps -w dist .
# The base interpreter, not the dev venv's, so the new venv has no link to .venv.
base=$("$PY" -c 'import sys; print(sys._base_executable)')
"$base" -m venv "$BUILD"
"$BUILD/bin/pip" install --quiet --upgrade pip
"$BUILD/bin/pip" install --quiet dist/votelake-*.whl
# delta-spark's jars inside the environment too (share/votelake/jars), so a
# cluster that unpacks it as its Spark install has Delta without a registry.
# Copied from the dev venv when fetched there; fetched with Maven otherwise.
if src=$("$PY" -c 'from votelake import jars; j = jars.local_jars(); print(jars.jar_dir() if j else "")') && [ -n "$src" ]; then
  mkdir -p "$BUILD/share/votelake/jars" && cp "$src"/*.jar "$BUILD/share/votelake/jars/"
else
  "$BUILD/bin/python" -m votelake.jars fetch >/dev/null
fi
# pyspark's jars (460 MB of the 1.6 GB) are left out: the JVM side comes from
# the cluster's own Spark install, and each executor unpacks the archive again
# for every application. Python's pyspark package stays (the executors import it).
# Level 1: the archive travels over a LAN or a disk, where a smaller file saves
# less than the extra compression costs on the build machine.
"$PY" -m venv_pack --prefix "$BUILD" --output "$OUT" --force --quiet --compress-level 1 \
  --exclude 'lib/python*/site-packages/pyspark/jars/*'

secs=$(( $(date +%s) - start ))
size=$(du -h "$OUT" | cut -f1)
echo "packed $OUT: $size ($(stat -c %s "$OUT") bytes) in ${secs}s"
