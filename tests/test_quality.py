"""Data-quality gates: suite files, Great Expectations runs on Spark, stored results, Data Docs.

The gates run with real Great Expectations on the shared local SparkSession;
each gate launches a handful of Spark jobs, so the four gates run once per
module (``gates``) and the tests inspect their results.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from pyspark.sql import types as T

from conftest import headless_dom
from votelake import quality, webassets
from votelake.catalog import Catalog
from votelake.config import CONF_DIR, load_settings
from votelake.lakehouse import load_catalog
from votelake.quality import QualityGateError, SuiteError

EXPECTATIONS = CONF_DIR / "expectations"

SUITE = """
table: silver.gate_test
expectations:
  - expect_table_columns_to_match_set:
      column_set: [person_id, election_date, election_type, voted_party]
      exact_match: true
    severity: critical
  - expect_compound_columns_to_be_unique: {column_list: [person_id, election_date]}
    severity: critical
  - expect_column_values_to_not_be_null: {column: person_id}
    severity: critical
  - expect_column_values_to_be_in_set: {column: election_type, value_set: [GENERAL, PRIMARY, MUNICIPAL]}
    severity: critical
  - expect_column_values_to_be_in_set: {column: voted_party, value_set: [DEM, REP, UNA]}
    severity: warning
    notes: a new party code is worth a look, not a stop
row_count_change: {max_drop: 0.10, max_growth: 0.50, severity: critical}
"""

SCHEMA = T.StructType([
    T.StructField("person_id", T.StringType()),
    T.StructField("election_date", T.DateType()),
    T.StructField("election_type", T.StringType()),
    T.StructField("voted_party", T.StringType()),
])
GEN, PRI = dt.date(2024, 11, 5), dt.date(2024, 3, 5)
GOOD = [("p1", GEN, "GENERAL", "DEM"), ("p1", PRI, "PRIMARY", "DEM"),
        ("p2", GEN, "GENERAL", "REP"), ("p3", GEN, "GENERAL", "UNA")]


def _suite():
    return quality.parse_suite(yaml.safe_load(SUITE), "test suite")


@pytest.fixture(scope="module")
def gates(spark, tmp_path_factory):
    """Four gates of one suite, stored in one results folder."""
    results = tmp_path_factory.mktemp("quality")
    suite = _suite()

    def gate(rows, previous_rows, run_id):
        df = spark.createDataFrame(rows, SCHEMA)
        return quality.run_gate(df, suite, previous_rows=previous_rows, results_dir=results, run_id=run_id)

    warn_rows = GOOD[:3] + [("p3", GEN, "GENERAL", "XYZ")]
    bad_rows = GOOD[:2] + [(None, GEN, "GENERAL", "REP"), ("p3", GEN, "BOGUS", "UNA")]
    return {
        "dir": results,
        "clean": gate(GOOD, None, "build-1"),
        "warning": gate(warn_rows, 4, "build-2"),
        "critical": gate(bad_rows, 4, "build-3"),
        "drop": gate(GOOD, 10, "build-4"),
    }


def test_passing_suite(gates):
    result = gates["clean"]
    assert result.success and not result.critical_failures and not result.warnings
    assert result.rows == 4 and result.row_count_bounds == (0, None)  # first load: no previous count
    assert len(result.outcomes) == 6  # five from the file, the row count added
    assert quality.enforce(result) is result
    unique = next(o for o in result.outcomes if o.type == "expect_compound_columns_to_be_unique")
    assert unique.severity == "critical" and unique.unexpected_count == 0


def test_warning_is_recorded_and_does_not_stop(gates):
    result = gates["warning"]
    assert result.success
    assert quality.enforce(result) is result
    assert [o.type for o in result.warnings] == ["expect_column_values_to_be_in_set"]
    warning = result.warnings[0]
    assert warning.severity == "warning" and warning.unexpected_count == 1
    assert "e.g. 'XYZ'" in warning.observed  # the failing value is sampled
    entry = quality.read_index(gates["dir"])[1]
    assert entry["run_id"] == "build-2" and entry["success"] and len(entry["warnings"]) == 1


def test_critical_failure_raises_with_a_clear_message(gates):
    result = gates["critical"]
    assert not result.success
    with pytest.raises(QualityGateError) as caught:
        quality.enforce(result)
    message = str(caught.value)
    assert caught.value.result is result
    assert message.startswith("quality gate failed for silver.gate_test (run build-3): 2 critical")
    assert "expect_column_values_to_not_be_null(column=person_id): 1 of 4 rows unexpected (25%), e.g. None" in message
    assert "expect_column_values_to_be_in_set(column=election_type, value_set=['GENERAL', 'PRIMARY', 'MUNICIPAL'])" in message
    assert "e.g. 'BOGUS'" in message
    assert str(result.path) in message


def test_row_count_drop_beyond_tolerance_fails(gates):
    result = gates["drop"]
    assert not result.success and result.row_count_bounds == (9, 15)
    [failure] = result.critical_failures
    assert failure.type == "expect_table_row_count_to_be_between" and failure.observed_value == 4
    assert "row count change (previous load 10 rows)" in failure.expectation
    with pytest.raises(QualityGateError, match=r"min_value=9, max_value=15\): observed 4"):
        quality.enforce(result)


def test_results_stored_and_rendered_as_data_docs(gates):
    results = gates["dir"]
    stored = sorted((results / "validations" / "silver.gate_test").glob("*.json"))
    assert len(stored) == 4
    critical = json.loads(gates["critical"].path.read_text())
    assert critical["success"] is False and critical["suite_name"] == "silver.gate_test"
    assert critical["meta"]["run_id"]["run_name"] == "build-3"
    assert critical["meta"]["votelake_gate"]["success"] is False
    assert {r["expectation_config"]["severity"] for r in critical["results"]} == {"critical", "warning"}
    index = quality.read_index(results)
    assert [e["run_id"] for e in index] == ["build-1", "build-2", "build-3", "build-4"]
    assert [e["success"] for e in index] == [True, True, False, False]
    assert all((results / e["path"]).is_file() for e in index)
    assert quality.previous_row_count(results, "silver.gate_test") == 4
    assert quality.previous_row_count(results, "silver.other") is None

    page = quality.build_data_docs(results)
    assert page == results / "data_docs" / "index.html"
    html = page.read_text()
    assert "silver.gate_test" in html and "build-3" in html
    pages = list((results / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 4
    assert quality.build_data_docs(results) == page  # nothing new: pages are not rendered again
    assert page.is_file()


# A table row that bootstrap-table drew: only its script adds data-index.
DRAWN_ROW = re.compile(r'<tr\b[^>]*data-index="\d+"[^>]*>(.*?)</tr>', re.S)
CDN_TAG = re.compile(r'<(?:script|link)\b[^>]*(?:src|href)="https?://')


def test_data_docs_list_the_latest_validations_offline_in_a_browser(gates, tmp_path):
    index = quality.build_data_docs(gates["dir"])
    site = index.parent
    assert not [p for p in site.rglob("*.html") if CDN_TAG.search(p.read_text())]

    # Headless Chromium that resolves no host name: whatever draws comes from the site's folder.
    rows = DRAWN_ROW.findall(headless_dom(index.as_uri(), tmp_path / "profile-index"))
    validations = [row for row in rows if "build-" in row]
    assert len(validations) == 4
    assert "build-4" in validations[0] and "silver.gate_test" in validations[0]  # newest first
    page = max(site.joinpath("validations").rglob("*.html"))
    assert DRAWN_ROW.findall(headless_dom(page.as_uri(), tmp_path / "profile-page"))

    # Without the site's own copies of its scripts, the same index lists nothing.
    bare = tmp_path / "bare"
    shutil.copytree(site, bare)
    shutil.rmtree(bare / webassets.VENDOR_DIR)
    assert DRAWN_ROW.findall(headless_dom((bare / "index.html").as_uri(), tmp_path / "profile-bare")) == []


def _write(tmp_path: Path, table: str, text: str) -> Path:
    (tmp_path / f"{table}.yaml").write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("row_count_change:", "row_count_chnage:"),
         "row_count_chnage: Extra inputs are not permitted"),
        (lambda s: s.replace("    severity: warning\n", "    severity: warning\n    sevrity: critical\n"),
         "unknown key(s) ['sevrity']"),
        (lambda s: s.replace("expect_compound_columns_to_be_unique", "expect_compound_columns_to_be_uniq"),
         "unknown expectation type 'expect_compound_columns_to_be_uniq'"),
        (lambda s: s.replace("{column: person_id}", "{colum: person_id}"), "colum"),
        (lambda s: s.replace("    severity: warning\n", "    severity: fatal\n"), "severity"),
        (lambda s: s.replace("max_drop: 0.10", "max_drop: 1.5"), "row_count_change.max_drop"),
    ],
    ids=["top-level key", "entry key", "expectation type", "expectation argument", "severity", "max_drop"],
)
def test_malformed_suite_fails_naming_the_problem(tmp_path, edit, message):
    folder = _write(tmp_path, "silver.gate_test", edit(SUITE))
    with pytest.raises(SuiteError) as caught:
        quality.load_suite(folder, "silver.gate_test")
    assert message in str(caught.value)
    assert "silver.gate_test.yaml" in str(caught.value)


def test_suite_file_must_name_its_table(tmp_path):
    folder = _write(tmp_path, "silver.other", SUITE)
    with pytest.raises(SuiteError, match="names table 'silver.gate_test'"):
        quality.load_suite(folder, "silver.other")
    assert quality.load_suite(folder, "silver.no_suite") is None


def test_row_count_bounds():
    change = quality.RowCountChange(max_drop=0.1, max_growth=0.5, min_rows=1, severity="critical")
    assert change.bounds(None) == (1, None)
    assert change.bounds(1000) == (900, 1500)
    assert change.bounds(0) == (1, None)  # growth from nothing is not bounded
    assert quality.RowCountChange(max_drop=1.0, max_growth=None, severity="warning").bounds(50) == (0, None)


def _catalog(tmp_path) -> Catalog:
    # Built as the jobs build it: tables.yaml plus one bronze table per landing source.
    settings = load_settings(None, [])
    return load_catalog(settings, lakehouse=tmp_path)


def test_shipped_suites_match_the_catalog(tmp_path):
    suites = quality.load_suites(EXPECTATIONS)
    catalog = _catalog(tmp_path)
    assert {"bronze.ncvoter", "bronze.ncvhis"} <= set(suites)
    silver = {t.name for t in catalog if t.layer == "silver"}
    assert silver <= set(suites), f"silver tables without a suite: {sorted(silver - set(suites))}"
    for name, suite in suites.items():
        assert name in catalog.names(), f"{name}.yaml names a table conf/tables.yaml does not declare"
        spec = catalog[name]
        types = {f.name: type(f.dataType).__name__ for f in spec.schema.fields}
        for entry in suite.expectations:
            args = entry.kwargs
            if entry.type == "expect_table_columns_to_match_set":
                assert set(args["column_set"]) == set(types), f"{name}: column_set differs from the catalog"
                assert args.get("exact_match") is True
            if entry.type == "expect_column_values_to_be_of_type":
                assert types.get(args["column"]) == args["type_"], f"{name}.{args['column']}: type differs"
            for column in [args.get("column"), *args.get("column_list", [])]:
                assert column is None or column in types, f"{name}: no column {column!r}"
        assert any(e.type == "expect_table_columns_to_match_set" for e in suite.expectations), name
        # Every declared key is unique and not null in its suite.
        if spec.primary_key:
            keys = list(spec.primary_key)
            unique = [e for e in suite.expectations if e.kwargs.get("row_condition") is None and (
                (e.type == "expect_compound_columns_to_be_unique" and e.kwargs["column_list"] == keys)
                or (e.type == "expect_column_values_to_be_unique" and [e.kwargs["column"]] == keys))]
            assert unique and all(u.severity == "critical" for u in unique), f"{name}: key {keys} not checked"


def test_shipped_value_sets_are_the_canonical_codes():
    from votelake.canonical import CODE_SETS, NOT_A_VOTE

    coded = {"status": "status", "party": "party", "voted_party": "party", "race": "race",
             "ethnicity": "ethnicity", "gender": "gender", "election_type": "election_type"}
    expected_sets = {
        ("silver.contacts", "channel"): set(CODE_SETS["channel"]),
        ("silver.digital_events", "channel"): set(CODE_SETS["digital_channel"]),
        ("silver.vote_history", "voting_method"): set(CODE_SETS["voting_method"]) - set(NOT_A_VOTE),
    }
    checked = 0
    for name, suite in quality.load_suites(EXPECTATIONS).items():
        if not name.startswith("silver."):
            continue
        for entry in suite.expectations:
            if entry.type != "expect_column_values_to_be_in_set":
                continue
            column = entry.kwargs["column"]
            want = expected_sets.get((name, column))
            if want is None and column in coded:
                want = set(CODE_SETS[coded[column]])
            if want is not None:
                assert set(entry.kwargs["value_set"]) == want, f"{name}.{column}: not the canonical value set"
                checked += 1
    assert checked >= 10
