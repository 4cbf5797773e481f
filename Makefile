# votelake: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# delta-spark's JVM jars, fetched once with Maven into the venv (Spark ships them
# to executors itself); without them Spark would resolve them at every start.
JARS   := $(VENV)/share/votelake/jars/.fetched
# The Data Docs' scripts and styles (WebJars from Maven Central), so the site reads offline.
WEB    := $(VENV)/share/votelake/web/.fetched
CONF   ?= conf/local.yaml
# Where `make run` looks for the default synthetic state (synth.out in the config).
LANDING ?= data/synth/landing

.PHONY: run test setup check-java synth clean-lake notebooks wheel docs cluster-up cluster-down cluster-env cluster-test bench bench-small bench-cluster

run: setup
	@test -d $(LANDING)/ncvoter || $(BIN)/votelake synth --conf $(CONF)
	$(BIN)/votelake pipeline --conf $(CONF)

# Two test files at a time, each in its own process and SparkSession: tiny
# Spark jobs wait on scheduling more than on the CPU, so two overlap well on 2 cores.
# Files sharing a session fixture run as one (tests/conftest.py, FILES_SHARING_FIXTURES),
# and the slowest go first, in conftest's order (SLOWEST_FIRST).
test: setup
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

setup: check-java $(STAMP) $(JARS) $(WEB)

$(JARS): $(STAMP)
	@command -v mvn >/dev/null 2>&1 || { echo "error: Maven is required to fetch delta-spark's jars (apt-get install maven)." >&2; exit 1; }
	$(BIN)/python -m votelake.jars fetch
	@touch $@

$(WEB): $(STAMP)
	$(BIN)/python -m votelake.webassets fetch
	@touch $@

# Spark 4 runs on Java 17+; fail early with a clear message instead of a JVM stack trace.
check-java:
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17+ is required (Spark runs on the JVM). Install it, e.g. 'apt-get install openjdk-17-jre-headless', or set JAVA_HOME." >&2; exit 1; }
	@v=$$(java -version 2>&1 | head -1 | sed -E 's/.*version "([0-9]+).*/\1/'); \
	  [ "$$v" -ge 17 ] 2>/dev/null || { echo "error: Java 17+ is required, found: $$(java -version 2>&1 | head -1)" >&2; exit 1; }

# The venv, the package and its pinned dependencies, and the notebooks' Jupyter kernel
# (this environment's Python, named "votelake").
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name votelake --display-name "votelake (.venv)" >/dev/null
	@touch $(STAMP)

synth: setup
	$(BIN)/votelake synth --conf $(CONF)

# The notebooks in the order they build on each other (the quick start makes the state the others read).
notebooks: setup
	$(BIN)/jupyter execute --kernel_name=votelake notebooks/quickstart.ipynb notebooks/model_analysis.ipynb \
	  notebooks/identity.ipynb notebooks/campaign_metrics.ipynb

# An installable wheel in dist/, the default configuration (src/votelake/conf) inside it.
wheel: setup
	$(BIN)/python -m pip wheel --no-deps -w dist .

# The pages under docs/ as a static site in build/site (mkdocs.yml; strict: a broken link fails).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

clean-lake:
	rm -rf lakehouse metastore mlflow.db mlartifacts

# A standalone Spark cluster (master + workers on 127.0.0.1) from the pyspark wheel's launch classes.
CLUSTER_WORKERS ?= 2
cluster-up: setup
	infra/standalone.sh start $(CLUSTER_WORKERS) $(or $(CLUSTER_CORES),1) $(or $(CLUSTER_MEMORY),2g)

cluster-down:
	infra/standalone.sh stop

# The project's environment packed for executors (spark-submit --archives), docs/cluster.md.
cluster-env: setup
	infra/pack-env.sh

# The whole pipeline, one spark-submit per job, on a 2-worker cluster with the
# packed environment on the executors (10-20 minutes on 2 cores).
cluster-test: setup
	infra/cluster-pipeline.sh

# The state-scale benchmark (hours on 2 cores): the pipeline per job with its
# floors and the single-node peers, 3 repetitions below 1M, then the summary
# (bench/results/SUMMARY.md). BENCH_ROOT needs ~3 GB per million voters.
BENCH_ROOT ?= /tmp/votelake-bench
BENCH_SPARK ?= --set spark.driver_memory=12g --set spark.shuffle_partitions=32
bench: setup
	$(BIN)/python -m bench pipeline --voters 100000 --reps 3 --peers pandas,duckdb --root $(BENCH_ROOT)/100k $(BENCH_SPARK)
	$(BIN)/python -m bench pipeline --voters 250000 --reps 3 --peers pandas,duckdb --root $(BENCH_ROOT)/250k $(BENCH_SPARK)
	$(BIN)/python -m bench pipeline --voters 1000000 --peers pandas,duckdb --root $(BENCH_ROOT)/1m $(BENCH_SPARK)
	$(BIN)/python -m bench pipeline --voters 5000000 --peers pandas,duckdb --root $(BENCH_ROOT)/5m $(BENCH_SPARK)
	$(BIN)/python -m bench summary

# Minutes, not hours: one small size, written beside the others as pipeline_20k.
bench-small: setup
	$(BIN)/python -m bench pipeline --voters 20000 --reps 3 --peers pandas,duckdb --root $(BENCH_ROOT)/20k

# The same pipeline bench against the standalone cluster instead of local[*].
bench-cluster: setup
	infra/standalone.sh start 1 $(or $(CLUSTER_CORES),$(shell nproc)) $(or $(CLUSTER_MEMORY),8g)
	$(BIN)/python -m bench pipeline --voters 20000 --root $(BENCH_ROOT)/cluster20k --name pipeline_cluster_20k \
	  --set spark.master=spark://127.0.0.1:7077 --set spark.conf.spark.executor.memory=6g; \
	  status=$$?; infra/standalone.sh stop; exit $$status
