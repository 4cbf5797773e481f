# votelake: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONF   ?= conf/local.yaml
# Where `make run` looks for the default synthetic state (synth.out in the config).
LANDING ?= data/synth/landing

.PHONY: run test setup check-java synth clean-lake notebooks cluster-up cluster-down

run: setup
	@test -d $(LANDING)/ncvoter || $(BIN)/votelake synth --conf $(CONF)
	$(BIN)/votelake pipeline --conf $(CONF)

# Two test files at a time, each in its own process and SparkSession: tiny
# Spark jobs wait on scheduling more than on the CPU, so two overlap well on 2 cores.
test: setup
	$(BIN)/pytest -n 2 --dist loadfile

setup: check-java $(STAMP)

# Spark 4 runs on Java 17+; fail early with a clear message instead of a JVM stack trace.
check-java:
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17+ is required (Spark runs on the JVM). Install it, e.g. 'apt-get install openjdk-17-jre-headless', or set JAVA_HOME." >&2; exit 1; }
	@v=$$(java -version 2>&1 | head -1 | sed -E 's/.*version "([0-9]+).*/\1/'); \
	  [ "$$v" -ge 17 ] 2>/dev/null || { echo "error: Java 17+ is required, found: $$(java -version 2>&1 | head -1)" >&2; exit 1; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

synth: setup
	$(BIN)/votelake synth --conf $(CONF)

notebooks: setup
	for nb in notebooks/*.py; do $(BIN)/python "$$nb"; done

clean-lake:
	rm -rf lakehouse mlflow.db mlartifacts
