"""Data contracts and the publish gates: schema, PII, breaking changes, score drift, clustering."""

from __future__ import annotations

import datetime as dt

import deltalake
import pyarrow as pa
from pathlib import Path

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from conftest import REPO, synthetic_state_settings
from votelake import contracts, publish
from votelake.config import CONF_DIR, PublishSettings
from votelake.lakehouse import Lakehouse, load_catalog
from votelake.models.propensity import bounded_uplift
from votelake.models.tracking import ChampionModel
from votelake.publish import SCORING_RUN_KEY, distribution_gate, published_run
from votelake.quality import QualityGateError
from votelake.transforms.scores import scoring_run_id, with_deciles

CONTRACTS = contracts.load_contracts(CONF_DIR / "contracts")
SCORES = CONTRACTS["gold.voter_scores"]


@pytest.fixture
def lake(spark, tmp_path):
    settings = synthetic_state_settings(tmp_path, 1000, "publish.min_county_voters=50")
    return Lakehouse.open(spark, settings, job="score"), settings


def _u(stream: int) -> F.Column:
    return F.pmod(F.xxhash64(F.col("id"), F.lit(stream)), F.lit(10_007)) / F.lit(10_007.0)


def _scores(spark, n: int = 2000, turnout_shift: float = 0.0, run: str = "run-a") -> DataFrame:
    """Rows in the gold.voter_scores contract: five counties, scores drawn per row."""
    turnout = F.least(F.greatest(_u(1) * 0.8 + 0.1 + F.lit(turnout_shift), F.lit(0.0)), F.lit(1.0))
    support, uplift = _u(2), (_u(3) - 0.3) * 0.1

    def text(c: str) -> F.Column:
        return F.lit(None).cast("string").alias(c)

    rows = spark.range(n).select(
        F.format_string("NC:%06d", "id").alias("person_id"), F.format_string("AA%06d", "id").alias("state_voter_id"),
        F.array(F.format_string("AA%06d", "id")).alias("state_voter_ids"), F.lit("NC").alias("state"), (F.col("id") % 5 + 1).cast("int").alias("county_id"),
        F.format_string("P%02d", F.col("id") % 7).alias("precinct"), F.lit("4").alias("cong_dist"),
        F.lit("16").alias("state_senate"), F.lit("31").alias("state_house"),
        F.round(turnout * 100).cast("int").alias("turnout_score"), turnout.alias("turnout_prob"),
        turnout.alias("turnout_prob_model"), F.ceil(turnout * 10).cast("int").alias("turnout_decile"),
        F.round(support * 100).cast("int").alias("support_score"), support.alias("support_prob"),
        support.alias("support_prob_model"),
        F.greatest(F.ceil(support * 10), F.lit(1)).cast("int").alias("support_decile"),
        F.round(uplift * 100).cast("int").alias("persuasion_score"), uplift.alias("persuasion_uplift"),
        F.lit(5).alias("persuasion_decile"),
        F.lit("votelake-turnout/1").alias("turnout_model"), F.lit("votelake-support/1").alias("support_model"),
        text("persuasion_model"), text("turnout_run_id"), text("support_run_id"), text("persuasion_run_id"),
        F.lit(3).cast("bigint").alias("feature_version"), F.lit(run).alias("scoring_run_id"),
        F.lit(dt.date(2026, 9, 1)).alias("as_of_date"),
        F.lit(dt.datetime(2026, 9, 2, 8, 0)).alias("scored_at"),
    )
    return rows.select(*[F.col(c).cast(f.dataType) for c, f in zip(SCORES.columns, SCORES.schema.fields)])


def test_shipped_contracts_declare_the_published_tables(tmp_path):
    catalog = load_catalog(synthetic_state_settings(tmp_path, 1000), lakehouse=tmp_path)
    for name, contract in CONTRACTS.items():
        assert catalog[name].schema == contract.schema
        assert catalog[name].partition_by == contract.partition_by
        # No published column is a direct identifier, by class or by name.
        assert contracts.identifier_columns(list(contract.columns), contract) == []
    assert {"gold.voter_scores", "gold.precinct_calibration"} <= set(CONTRACTS)


def test_data_dictionary_is_rendered_from_the_contracts():
    shipped = (REPO / "docs" / "data_dictionary.md").read_text()
    assert shipped == contracts.render_markdown(CONTRACTS), "run: votelake contracts render"


def test_contract_check_catches_a_dropped_column(spark, lake):
    lakehouse, _ = lake
    rows = _scores(spark).drop("support_decile")
    with pytest.raises(contracts.ContractError, match="'support_decile' of the contract is missing"):
        lakehouse.publish(rows, "gold.voter_scores")
    assert lakehouse.version("gold.voter_scores") is None  # nothing written


@pytest.mark.parametrize("column", ["email", "first_name", "res_street_address", "birth_date"])
def test_contract_check_catches_a_pii_column(spark, lake, column):
    lakehouse, _ = lake
    rows = _scores(spark).withColumn(column, F.lit("x"))
    with pytest.raises(contracts.ContractError, match=f"'{column}' is a direct personal identifier"):
        lakehouse.publish(rows, "gold.voter_scores")
    assert lakehouse.version("gold.voter_scores") is None


def test_contract_values_catch_identifiers_hidden_in_a_declared_column(spark, lake):
    """A declared string column holding e-mail addresses or phone numbers fails the Great Expectations check."""
    lakehouse, _ = lake
    rows = _scores(spark).withColumn(
        "precinct", F.when(F.col("person_id") == "NC:000007", F.lit("(919) 555-0142")).otherwise(F.col("precinct")))
    with pytest.raises(QualityGateError, match="precinct"):
        lakehouse.publish(rows, "gold.voter_scores")
    assert lakehouse.version("gold.voter_scores") is None


# Identifiers planted inside values: embedded, punctuated, bare.
PLANTED = ["jane.q.voter@example.org (919) 555-0142", "9192680736", "(919) 555-0142", "919-555-0142",
           "919.555.0142", "+1 919 555 0142", "+19195550143", "1-919-555-0144", "P07 call 919 555 0145 now",
           "x@y.co", "J.DOE+tag@mail.example.com", "P07 jdoe@ex.org", "ph:9195550146;", "(919)555-0147",
           "919 5550148", "precinct 12 / 704-555-1234", "first.last@sub.domain.edu", "+1.919.555.0149",
           "mailto:a_b@c-d.io", "tel 919.555.0150 ext 4"]


def test_identifiers_anywhere_in_a_value_block_the_publish_and_are_never_quoted(spark, lake):
    lakehouse, settings = lake
    planted = spark.createDataFrame([(f"NC:{i:06d}", v) for i, v in enumerate(PLANTED)], "person_id string, v string")
    rows = (_scores(spark).join(planted, on="person_id", how="left")
            .withColumn("precinct", F.coalesce("v", "precinct")).drop("v"))
    with pytest.raises(QualityGateError) as err:
        lakehouse.publish(rows.select(*SCORES.columns), "gold.voter_scores")
    assert lakehouse.version("gold.voter_scores") is None
    message = str(err.value)
    assert "precinct" in message and f"{len(PLANTED)} of 2,000 rows unexpected" in message
    # No message, result file, index or Data Docs page quotes any of them.
    written = [p.read_text(errors="replace") for p in Path(settings.quality.results_dir).rglob("*") if p.is_file()]
    assert written
    for value in PLANTED:
        assert value not in message and not any(value in text for text in written), value


def _persons(spark, lakehouse, people: list[dict]) -> None:
    """Write silver.persons with these people (other columns blank)."""
    table = lakehouse.table("silver.persons")
    defaults = {"state": "NC", "registration_key": "NC:0", "registrations": 1, "is_active": True,
                "listed_since": dt.date(2020, 1, 1)}
    rows = [tuple({**defaults, **p}.get(f.name) for f in table.schema.fields) for p in people]
    lakehouse.store.write(spark.createDataFrame(rows, table.schema), table, "overwrite")


# A voter's name, street address and birth date, written into a free-text value every way a person would.
NAMED = ["call Jane Q. Doe now", "JANE DOE", "jane-doe", "12 Oak St", "visit 12 OAK ST. apt 4", "1961-07-30",
         "born 07/30/1961", "Tom Lee / 400 N Main Street"]


def test_a_voters_name_address_or_birth_date_in_a_value_blocks_the_publish(spark, lake):
    lakehouse, _ = lake
    _persons(spark, lakehouse, [
        {"person_id": "P1", "state_voter_id": "AA1", "first_name": "JANE", "middle_name": "Q", "last_name": "DOE",
         "address_line": "12 OAK ST", "birth_date": dt.date(1961, 7, 30)},
        {"person_id": "P2", "state_voter_id": "AA2", "first_name": "TOM", "last_name": "LEE",
         "address_line": "400 N MAIN STREET"}])
    # Real voters' names elsewhere, and single words that are also a name, pass.
    clean = _scores(spark).withColumn("precinct", F.when(F.col("person_id") == "NC:000001", F.lit("DOE"))
                                      .otherwise(F.col("precinct")))
    published = lakehouse.publish(clean, "gold.voter_scores")
    assert published.committed
    planted = spark.createDataFrame([(f"NC:{i:06d}", v) for i, v in enumerate(NAMED)], "person_id string, v string")
    rows = (_scores(spark, run="run-b").join(planted, on="person_id", how="left")
            .withColumn("precinct", F.coalesce("v", "precinct")).drop("v").select(*SCORES.columns))
    with pytest.raises(contracts.ContractError) as err:
        lakehouse.publish(rows, "gold.voter_scores")
    message = str(err.value)
    assert ("precinct hold a voter's address" in message and "precinct hold a voter's birth date" in message
            and "precinct hold a voter's name" in message)
    assert not any(v.lower() in message.lower() for v in ("jane", "doe", "oak", "1961", "main"))
    assert lakehouse.version("gold.voter_scores") == published.version


def test_a_ten_digit_voter_id_is_not_a_phone_but_an_email_there_is(spark, lake):
    lakehouse, _ = lake
    ten_digits = _scores(spark).withColumn("state_voter_id", F.format_string("9%09d", F.col("county_id")))
    assert lakehouse.publish(ten_digits.select(*SCORES.columns), "gold.voter_scores").committed
    mailed = _scores(spark).withColumn("state_voter_id", F.lit("voter@example.org"))
    with pytest.raises(QualityGateError, match="state_voter_id"):
        lakehouse.publish(mailed.select(*SCORES.columns), "gold.voter_scores")


def test_contract_values_catch_out_of_range_scores(spark, lake):
    lakehouse, _ = lake
    rows = _scores(spark).withColumn("turnout_decile", F.col("turnout_decile") + 2)  # up to 11
    with pytest.raises(QualityGateError, match="turnout_decile"):
        lakehouse.publish(rows, "gold.voter_scores")


def _evolved(drop: str | None = None, retype: tuple[str, str] | None = None, version: str = "1.1.0"):
    raw = SCORES.model_dump(mode="json")
    raw["version"] = version
    if drop:
        del raw["columns"][drop]
    if retype:
        raw["columns"][retype[0]]["type"] = retype[1]
    return contracts.parse_contract(raw)


def test_breaking_changes_need_a_new_major_version():
    with pytest.raises(contracts.ContractError, match="'state_house' dropped or renamed"):
        contracts.check_evolution(SCORES, _evolved(drop="state_house"))
    with pytest.raises(contracts.ContractError, match="'feature_version' changed type bigint → int"):
        contracts.check_evolution(SCORES, _evolved(retype=("feature_version", "int not null")))
    with pytest.raises(contracts.ContractError, match="'scoring_run_id' became nullable"):
        contracts.check_evolution(SCORES, _evolved(retype=("scoring_run_id", "string")))
    # Widening is not breaking; a new major version allows a breaking change and names it.
    assert contracts.check_evolution(SCORES, _evolved(retype=("county_id", "bigint"))) == []
    assert contracts.check_evolution(SCORES, _evolved(drop="state_house", version="2.0.0")) == [
        "column 'state_house' dropped or renamed"]


def test_publish_refuses_a_contract_that_breaks_the_published_one(spark, lake):
    lakehouse, _ = lake
    lakehouse.publish(_scores(spark), "gold.voter_scores")
    assert lakehouse.published_contract("gold.voter_scores") == SCORES
    narrowed = _evolved(drop="state_house")
    lakehouse.published = {**lakehouse.published, "gold.voter_scores": narrowed}
    version = lakehouse.version("gold.voter_scores")
    with pytest.raises(contracts.ContractError, match="need a new major version"):
        lakehouse.publish(_scores(spark).drop("state_house"), "gold.voter_scores")
    assert lakehouse.version("gold.voter_scores") == version


def test_published_rows_are_clustered_by_county_within_the_state(spark, lake):
    lakehouse, _ = lake
    lakehouse.publish(_scores(spark, 4000), "gold.voter_scores")
    actions = deltalake.DeltaTable(lakehouse.table("gold.voter_scores").uri).get_add_actions(flatten=True)
    files = pa.table(actions).to_pandas()
    assert len(files) > 1
    ranges = sorted(zip(files["min.county_id"], files["max.county_id"]))
    # Range-partitioned: each file holds a contiguous slice of counties, so a
    # county's readers skip most files by their statistics.
    assert all(high <= next_low for (_, high), (next_low, _) in zip(ranges, ranges[1:]))


def test_score_distribution_and_shift(spark):
    schema = "state string, county_id int, turnout_score int, support_score int, persuasion_score int"
    old = spark.createDataFrame([("NC", 1, 40, 50, 2), ("NC", 1, 60, 50, 4), ("NC", 2, 50, 50, None)], schema)
    new = spark.createDataFrame([("NC", 1, 50, 50, 2), ("NC", 1, 70, 50, 4), ("NC", 2, 50, 50, None)], schema)
    shift = publish.distribution_shift(publish.score_distribution(new), publish.score_distribution(old), 2)
    expected = spark.createDataFrame([
        # county 1 turnout: mean 50 → 60 with sd 14.14: 0.707 sd; spread unchanged
        ("NC", 1, "turnout_score", 2, 2, 60.0, 50.0, 14.142, 14.142, 0.7071, 1.0, True),
        ("NC", 1, "support_score", 2, 2, 50.0, 50.0, 0.0, 0.0, 0.0, 1.0, True),
        ("NC", 1, "persuasion_score", 2, 2, 3.0, 3.0, 1.4142, 1.4142, 0.0, 1.0, True),
        ("NC", 2, "turnout_score", 1, 1, 50.0, 50.0, None, None, 0.0, 1.0, False),  # too small to gate
        ("NC", 2, "support_score", 1, 1, 50.0, 50.0, None, None, 0.0, 1.0, False),
        ("NC", -1, "turnout_score", 3, 3, 56.667, 50.0, 11.547, 10.0, 0.6667, 1.1547, True),
        ("NC", -1, "support_score", 3, 3, 50.0, 50.0, 0.0, 0.0, 0.0, 1.0, True),
        ("NC", -1, "persuasion_score", 2, 2, 3.0, 3.0, 1.4142, 1.4142, 0.0, 1.0, True),
    ], "state string, county_id int, score string, n bigint, published_n bigint, mean double, published_mean double, "
       "std double, published_std double, mean_shift double, spread_ratio double, gated boolean")
    assertDataFrameEqual(shift, expected, rtol=1e-3)


def test_a_constant_score_rounded_differently_has_not_moved(spark):
    """A county where every voter has the same score: a std of 1e-16 against 0 is rounding, not a spread."""
    schema = "state string, county_id int, score string, n bigint, mean double, std double"
    old = spark.createDataFrame([("NC", 41, "persuasion_score", 8465, 4.0, 0.0)], schema)
    new = spark.createDataFrame([("NC", 41, "persuasion_score", 8465, 4.000000000000001, 8.9e-16)], schema)
    shift = publish.distribution_shift(new, old, 500).select("mean_shift", "spread_ratio").first()
    assert (shift["mean_shift"], shift["spread_ratio"]) == (0.0, 1.0)


def test_publish_gate_blocks_a_shifted_run_unless_forced(spark, lake, tmp_path):
    lakehouse, settings = lake
    lakehouse.publish(_scores(spark), "gold.voter_scores", metadata={SCORING_RUN_KEY: "run-a"})
    published = published_run(lakehouse)
    assert published == {"scoring_run": "run-a", "version": lakehouse.version("gold.voter_scores")}

    # The same distribution passes; turnout 20 points higher everywhere does not.
    same: dict = {}
    assert distribution_gate(lakehouse, settings, _scores(spark, run="run-b"), "run-b", published, same)[
        "votelake.publish_gate"] == "within tolerance"
    shifted = _scores(spark, turnout_shift=0.2, run="run-c")
    def gate(rows: DataFrame) -> dict[str, str]:
        return distribution_gate(lakehouse, settings, rows, "run-c", published, {})

    with pytest.raises(publish.PublishBlockedError, match="run-c not published") as blocked:
        lakehouse.publish(shifted, "gold.voter_scores", metadata={SCORING_RUN_KEY: "run-c"}, before_write=gate)
    assert lakehouse.version("gold.voter_scores") == published["version"]
    report = blocked.value.report.read_text()
    assert "blocked: beyond tolerance" in report and "| NC | statewide | turnout_score |" in report

    forced = settings.model_copy(update={"publish": PublishSettings(
        min_county_voters=50, force=True, force_reason="turnout model retrained on the 2024 general")})
    summary: dict = {}
    rerun = Lakehouse.open(spark, forced, job="score")  # a new job run (its own run version)
    rerun.publish(shifted, "gold.voter_scores", metadata={SCORING_RUN_KEY: "run-c"},
                  before_write=lambda rows: distribution_gate(rerun, forced, rows, "run-c", published, summary))
    commit = lakehouse.store.history(lakehouse.table("gold.voter_scores"))[0]["metadata"]
    assert commit["votelake.forced_reason"] == "turnout model retrained on the 2024 general"
    assert commit["votelake.publish_gate"].startswith("forced beyond tolerance")
    assert summary["compared_with"] == "run-a"
    # The blocked-then-forced run is the latest; the first stays readable by time travel.
    assert lakehouse.read("gold.voter_scores", version=published["version"]).agg(
        F.max("scoring_run_id")).first()[0] == "run-a"


def test_force_needs_a_reason():
    with pytest.raises(ValueError, match="force_reason"):
        PublishSettings(force=True)


def test_deciles_are_within_the_state(spark):
    values = [("NC", float(v)) for v in range(100)] + [("OH", float(v)) for v in range(20)] + [("OH", None)]
    rows = spark.createDataFrame(values, "state string, p double")
    expected = spark.createDataFrame(
        [("NC", float(v), v // 10 + 1) for v in range(100)] + [("OH", float(v), v // 2 + 1) for v in range(20)]
        + [("OH", None, None)], "state string, p double, p_decile int")
    assertDataFrameEqual(with_deciles(rows, {"p_decile": "p"}), expected)


def test_uplift_estimates_beyond_a_probability_change_are_clipped(spark):
    rows = spark.createDataFrame([(1, 1.27), (2, 0.05), (3, -1.5), (4, None)], "id int, uplift double")
    expected = spark.createDataFrame([(1, 1.0), (2, 0.05), (3, -1.0), (4, None)], "id int, uplift double")
    assertDataFrameEqual(rows.select("id", bounded_uplift(F.col("uplift")).alias("uplift")), expected)


def test_a_scoring_run_is_known_by_its_models_runs_and_code():
    """Re-scoring is a no-op only for the same inputs: another store's 'v1', or new code, scores anew."""
    def run_id(run: str, code: str) -> str:
        models = {"turnout": ChampionModel("votelake-turnout", "1", run, model=None)}
        return scoring_run_id(3, dt.date(2026, 9, 1), models, {"results": None}, {"date": "2026-11-03"}, code)

    assert run_id("run-a", "c1") == run_id("run-a", "c1")
    assert len({run_id("run-a", "c1"), run_id("run-b", "c1"), run_id("run-a", "c2")}) == 3
