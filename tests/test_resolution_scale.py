"""Identity-resolution quality at state scale, against the synthetic ground truth.

Opt-in (``slow``): a 200,000-voter state takes about half an hour on two
cores. Runs the real jobs (synth → ingest → build) with the configured
resolution method and asserts the targets:

* duplicate registrations → persons: pairwise precision ≥ 0.99, recall ≥ 0.97;
* contacts and digital events → persons: precision ≥ 0.98, recall ≥ 0.95.

Run: ``VOTELAKE_TEST_DRIVER_MEMORY=10g .venv/bin/pytest -m slow tests/test_resolution_scale.py -s``
(``VOTELAKE_RESOLUTION_VOTERS`` and ``VOTELAKE_RESOLUTION_METHOD`` change the
size and the method; ``VOTELAKE_RESOLUTION_OUT`` also writes the figures as JSON).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import synthetic_state_settings
from votelake.jobs import build, ingest, synth
from votelake.lakehouse import Lakehouse
from votelake.resolve.evaluate import resolution_against_truth
from votelake.synth.generate import read_truth

pytestmark = pytest.mark.slow

VOTERS = int(os.environ.get("VOTELAKE_RESOLUTION_VOTERS", "200000"))
METHOD = os.environ.get("VOTELAKE_RESOLUTION_METHOD", "splink")


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return synthetic_state_settings(tmp_path_factory.mktemp("resolution"), VOTERS, "synth.partitions=8",
                                    f"resolve.method={METHOD}")


@pytest.fixture
def state_scale_shuffles(spark):
    """More shuffle partitions than the tiny-data default while this test runs (Splink's pair tables)."""
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "8")
    yield
    spark.conf.set("spark.sql.shuffle.partitions", before)


def test_resolution_reaches_the_targets(spark, settings, state_scale_shuffles):
    seconds = {}
    for name, job in (("synth", synth), ("ingest", ingest), ("build", build)):
        start = time.perf_counter()
        summary = job.run(spark, settings)
        seconds[name] = round(time.perf_counter() - start, 1)
    lake = Lakehouse.open(spark, settings)
    quality = resolution_against_truth(lake.read("silver.person_ids"), lake.read("silver.contacts"),
                                       lake.read("silver.digital_events"), read_truth(spark, settings.synth.out),
                                       settings.state)
    figures = {"voters": VOTERS, "method": METHOD, "seconds": seconds, "resolution": summary["resolution"],
               **quality.as_dict()}
    print(f"\n{json.dumps(figures, indent=1)}")
    if os.environ.get("VOTELAKE_RESOLUTION_OUT"):
        Path(os.environ["VOTELAKE_RESOLUTION_OUT"]).write_text(json.dumps(figures, indent=1) + "\n")
    assert quality.dedupe.true_pairs > 0 and quality.contacts.linkable > 0 and quality.digital.linkable > 0
    assert quality.dedupe.precision >= 0.99 and quality.dedupe.recall >= 0.97
    for links in (quality.contacts, quality.digital):
        assert links.precision >= 0.98 and links.recall >= 0.95
