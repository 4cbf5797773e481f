# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # votelake quick start
#
# Generate a small synthetic state, run the pipeline, and look at the scores.
# The notebook is thin: everything it runs is in the `votelake` package.
# Run it as a script (`python notebooks/quickstart.py`) or open it in Jupyter
# with jupytext.

# %%
import os
import tempfile

from pyspark.sql import functions as F

from votelake.config import load_settings
from votelake.jobs.common import run_jobs
from votelake.lakehouse import Lakehouse
from votelake.cli import JOBS

workdir = os.environ.get("VOTELAKE_NOTEBOOK_DIR") or tempfile.mkdtemp(prefix="votelake-nb-")
settings = load_settings(
    None,
    [
        "synth.voters=3000",
        f"synth.out={workdir}/synth",
        f"landing={workdir}/synth/landing",
        f"storage.lakehouse={workdir}/lakehouse",
        f"quality.results_dir={workdir}/quality",
        f"mlflow.tracking_uri=sqlite:///{workdir}/mlflow.db",
        f"mlflow.artifact_root={workdir}/mlartifacts",
        "spark.master=local[2]",
        "spark.shuffle_partitions=4",
        # A quick look: one learner per model with no hyperparameter search,
        # and fewer bootstrap draws for the Qini interval (the defaults tune
        # logistic regression and boosted trees, try two uplift learners and
        # keep the better of each).
        "model.learners=[gbt]",
        "model.tuning=none",
        "model.uplift_learners=[two_stage]",
        "model.bootstrap=100",
    ],
)

# %%
results = run_jobs(settings, [(name, JOBS[name]) for name in ("synth", "ingest", "build", "train", "score")])
turnout = results["train"]["turnout"]["gbt"]
print({k: v for k, v in turnout.items() if k.startswith(("test_", "baseline", "reason"))})

# %% [markdown]
# Scores by county: mean turnout and support probability.

# %%
from pyspark.sql import SparkSession

spark = SparkSession.getActiveSession()
lake = Lakehouse.open(spark, settings)
scores = lake.read("gold.voter_scores")
by_county = (
    scores.groupBy("county_id")
    .agg(F.count("*").alias("voters"), F.avg("turnout_prob").alias("turnout"), F.avg("support_prob").alias("support"))
    .orderBy(F.desc("voters"))
)
by_county.show(10)
assert scores.count() == results["score"]["rows"]
