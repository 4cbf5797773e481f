"""Experiment assignments: the layout, linking to persons, the build report, and ingest's sources."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake.canonical import FIELDS
from votelake.config import CONF_DIR, load_settings
from votelake.jobs.build import experiment_report
from votelake.jobs.ingest import plan_deliveries
from votelake.lakehouse import load_catalog
from votelake.layouts import load_layout
from votelake.transforms import silver
from votelake.transforms.canonicalize import canonical_records

LAYOUTS = CONF_DIR / "layouts"
ASSIGNED = dt.datetime(2026, 6, 15, 9, 0)
RECORDS = T.StructType(
    [T.StructField(c, T.TimestampType() if c == "assigned_at" else T.StringType()) for c in FIELDS["experiments"]]
    + [T.StructField("_source_file", T.StringType()), T.StructField("_load_id", T.StringType()),
       T.StructField("_snapshot_date", T.DateType())])
VOTER_IDS = T.StructType([T.StructField("state_voter_id", T.StringType()), T.StructField("person_id", T.StringType())])
ASSIGNMENTS = "person_id string, state_voter_id string, experiment_id string, arm string, assigned_at timestamp"


def _catalog_schema(tmp_path) -> T.StructType:
    settings = load_settings(None, [], environ={})
    catalog = load_catalog(settings, lakehouse=tmp_path)
    return catalog["silver.experiment_assignments"].schema


def test_layout_reads_the_assignment_file(spark):
    layout = load_layout(LAYOUTS, "experiments")
    schema = T.StructType([T.StructField(c, T.StringType()) for c in layout.columns]
                          + [T.StructField(c, T.StringType()) for c in ("_source_file", "_load_id")]
                          + [T.StructField("_snapshot_date", T.DateType())])
    bronze = spark.createDataFrame([("AB000123", "persuasion_2026", "Treatment", "2026-06-15T09:00:00", "f", "l",
                                     None)], schema)
    got = canonical_records(bronze, layout).select(*FIELDS["experiments"])
    expected = spark.createDataFrame([("AB000123", "persuasion_2026", "treatment", ASSIGNED)],
                                     "state_voter_id string, experiment_id string, arm string, assigned_at timestamp")
    assertDataFrameEqual(got, expected)


def test_assignments_link_by_exact_voter_id_and_keep_the_unmatched(spark, tmp_path):
    records = spark.createDataFrame([
        ("ab000001", "persuasion_2026", "treatment", ASSIGNED, "f1", "L1", None),  # lower case: still linked
        ("AB000002", "persuasion_2026", "control", ASSIGNED, "f1", "L1", None),    # the mover's older registration
        ("ZZ999999", "persuasion_2026", "control", ASSIGNED, "f1", "L1", None),    # in no registration: kept
        # re-exported in a later delivery with a changed arm: the latest load wins
        ("AB000003", "persuasion_2026", "control", ASSIGNED, "f1", "L1", None),
        ("AB000003", "persuasion_2026", "treatment", ASSIGNED, "f2", "L2", None),
        # the same voter in another experiment is another assignment
        ("AB000001", "gotv_2026", "control", ASSIGNED, "f2", "L2", None),
    ], RECORDS)
    voter_ids = spark.createDataFrame([("AB000001", "P1"), ("AB000002", "P2"), ("AB000002", "P2"), ("AB000003", "P3"),
                                       ("CD000004", "P2")], VOTER_IDS)
    got = silver.experiment_assignments(records, voter_ids)
    # The transform's select is the table's schema contract (names, order, types).
    assert [(f.name, f.dataType) for f in got.schema.fields] == [
        (f.name, f.dataType) for f in _catalog_schema(tmp_path).fields]
    expected = spark.createDataFrame([
        ("P1", "AB000001", "persuasion_2026", "treatment", ASSIGNED),
        ("P2", "AB000002", "persuasion_2026", "control", ASSIGNED),
        (None, "ZZ999999", "persuasion_2026", "control", ASSIGNED),
        ("P3", "AB000003", "persuasion_2026", "treatment", ASSIGNED),
        ("P1", "AB000001", "gotv_2026", "control", ASSIGNED),
    ], ASSIGNMENTS)
    assertDataFrameEqual(got, expected)
    report = experiment_report(got)
    assert report == {"assignments": 5, "linked": 4, "unmatched": 1, "first_assigned": dt.date(2026, 6, 15)}


def test_no_assignments_give_an_empty_table_and_no_date(spark):
    records = spark.createDataFrame([], RECORDS)
    voter_ids = spark.createDataFrame([("AB000001", "P1")], VOTER_IDS)
    got = silver.experiment_assignments(records, voter_ids)
    assert got.columns == ["person_id", "state_voter_id", "experiment_id", "arm", "assigned_at"]
    assert experiment_report(got) == {"assignments": 0, "linked": 0, "unmatched": 0, "first_assigned": None}


def test_ingest_reads_experiments_and_ignores_results(tmp_path):
    landing = tmp_path / "landing"
    files = {
        "ncvoter/snapshot_20260901/part-0.csv": "\t".join(load_layout(LAYOUTS, "nc_ncvoter").columns) + "\n",
        "ncvhis/part-0.csv": "\t".join(load_layout(LAYOUTS, "nc_ncvhis").columns) + "\n",
        "experiments/part-0.csv": "state_voter_id,experiment_id,arm,assigned_at\n"
                                  "AB000001,persuasion_2026,treatment,2026-06-15T09:00:00\n",
        "results/part-0.csv": "precinct,office,party_detailed,party_simplified,mode,votes,county_name,candidate,"
                              "district,date,state_po\n01-01,BALLOTS CAST,,,TOTAL,3,WAKE,,,2024-11-05,NC\n",
    }
    for rel, text in files.items():
        (landing / rel).parent.mkdir(parents=True, exist_ok=True)
        (landing / rel).write_text(text)
    settings = load_settings(None, [f"landing={landing}"], environ={})
    plan = {d.source.name: d for d in plan_deliveries(settings)}
    assert set(plan) == {"ncvoter", "ncvhis", "experiments"}
    assert [f.uri.rsplit("/", 2)[-2] for f in plan["experiments"].files] == ["experiments"]
    assert not any("/results/" in f.uri for d in plan.values() for f in d.files)
