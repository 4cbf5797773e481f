"""Calibration to known totals: MEDSL precinct results, the logit shift, precinct error.

Inline data uses made-up precinct codes and candidates. The real Chatham
results file is checked on counts and county-wide totals only.
"""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from conftest import REPO
from votelake.models.totals import (
    EPS,
    ballots_cast,
    calibrate_to_results,
    calibration_report,
    logit_shift,
    match_precincts,
    precinct_error,
    precinct_results,
    share_targets,
    shift_to_mean,
)

CHATHAM = REPO.parent / "shared" / "data" / "nc_chatham_2018" / "results_20181106_general_chatham_medsl.csv"

SCORED_SCHEMA = T.StructType([
    T.StructField("voter", T.StringType(), False),
    T.StructField("precinct", T.StringType(), True),
    T.StructField("p", T.DoubleType(), True),
    T.StructField("w", T.DoubleType(), True),
])
SCORED_ROWS = [
    ("v01", "A", 0.10, 1.0), ("v02", "A", 0.35, 0.5), ("v03", "A", 0.50, 0.9),
    ("v04", "A", 0.80, 0.2), ("v05", "A", 0.95, 1.0),
    ("v06", "B", 0.20, 0.7), ("v07", "B", 0.25, 0.1), ("v08", "B", 0.60, 0.4), ("v09", "B", 0.05, 1.0),
    ("v10", "C", 0.30, 0.3), ("v11", "C", 0.70, 0.6), ("v12", "C", 0.40, 0.8),
]
TARGET_SCHEMA = T.StructType([
    T.StructField("precinct", T.StringType(), False),
    T.StructField("target", T.DoubleType(), True),
])
SHIFT_SCHEMA = T.StructType([
    T.StructField("precinct", T.StringType(), True),
    T.StructField("delta", T.DoubleType(), False),
    T.StructField("n", T.LongType(), False),
    T.StructField("target", T.DoubleType(), True),
    T.StructField("predicted_before", T.DoubleType(), True),
    T.StructField("predicted_after", T.DoubleType(), True),
])

MEDSL_COLUMNS = ("precinct", "office", "party_simplified", "mode", "votes", "county_name", "candidate", "district")
MEDSL_SCHEMA = T.StructType([T.StructField(c, T.StringType(), True) for c in MEDSL_COLUMNS])
RESULTS_SCHEMA = T.StructType([
    T.StructField("county_name", T.StringType(), True),
    T.StructField("precinct", T.StringType(), True),
    T.StructField("dem_votes", T.LongType(), True),
    T.StructField("rep_votes", T.LongType(), True),
    T.StructField("two_party_share", T.DoubleType(), True),
])


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def _reference_delta(probs: list[float], weights: list[float], target: float) -> float:
    """The shift solved by plain bisection, independently of the Spark code."""
    lo, hi = -60.0, 60.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(w * _sigmoid(_logit(p) + mid) for p, w in zip(probs, weights)) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _expected_shifts(spark, targets: dict[str, float], weighted: bool):
    rows = []
    for group in ("A", "B", "C"):
        probs = [r[2] for r in SCORED_ROWS if r[1] == group]
        weights = [r[3] if weighted else 1.0 for r in SCORED_ROWS if r[1] == group]
        before = sum(w * p for p, w in zip(probs, weights))
        target = targets.get(group)
        delta = _reference_delta(probs, weights, target) if target is not None else 0.0
        after = target if target is not None else before
        rows.append((group, delta, len(probs), target, before, after))
    return spark.createDataFrame(rows, SHIFT_SCHEMA)


@pytest.fixture(scope="module")
def scored(spark):
    return spark.createDataFrame(SCORED_ROWS, SCORED_SCHEMA)


def test_logit_shift_hits_targets_and_leaves_untargeted_groups(spark, scored):
    targets = spark.createDataFrame([("A", 3.2), ("B", 0.4), ("Z", 5.0)], TARGET_SCHEMA)

    calibrated, shifts = logit_shift(scored, ["precinct"], "p", targets, "target")

    assertDataFrameEqual(shifts, _expected_shifts(spark, {"A": 3.2, "B": 0.4}, weighted=False),
                         rtol=0.0, atol=1e-6)
    assert calibrated.columns == [*scored.columns, "p_calibrated"]
    sums = dict(calibrated.groupBy("precinct").agg(F.sum("p_calibrated")).collect())
    assert sums["A"] == pytest.approx(3.2, abs=1e-6)
    assert sums["B"] == pytest.approx(0.4, abs=1e-6)
    # No target for C (and "Z" has no voters): C's scores are untouched.
    unchanged = calibrated.where(F.col("precinct") == "C").select("voter", F.col("p_calibrated").alias("p"))
    assertDataFrameEqual(unchanged, scored.where(F.col("precinct") == "C").select("voter", "p"))


def test_logit_shift_keeps_order_within_group(spark, scored):
    targets = spark.createDataFrame([("A", 1.0), ("B", 3.0)], TARGET_SCHEMA)

    calibrated, _ = logit_shift(scored, ["precinct"], "p", targets, "target")

    rows = calibrated.select("precinct", "p", "p_calibrated").collect()
    for group in ("A", "B"):
        members = [r for r in rows if r["precinct"] == group]
        assert sorted(members, key=lambda r: r["p"]) == sorted(members, key=lambda r: r["p_calibrated"])
        assert len({r["p_calibrated"] for r in members}) == len(members)
    # B's target is above its raw sum, A's below: every score moves the same way within a group.
    assert all(r["p_calibrated"] > r["p"] for r in rows if r["precinct"] == "B")
    assert all(r["p_calibrated"] < r["p"] for r in rows if r["precinct"] == "A")


def test_shift_to_mean_sets_the_level_and_keeps_every_rank(spark, scored):
    with_null = scored.unionByName(spark.createDataFrame([("v13", "C", None, 1.0)], SCORED_SCHEMA))

    shifted, figures = shift_to_mean(with_null, "p", F.lit(0.62))

    assert shifted.columns == [*with_null.columns, "p_calibrated"]
    rows = shifted.orderBy("voter").collect()
    assert sum(r["p_calibrated"] for r in rows[:12]) / 12 == pytest.approx(0.62, abs=1e-7)
    assert rows[12]["p_calibrated"] is None  # a missing score is left out and stays missing
    scored_rows = rows[:12]
    assert sorted(scored_rows, key=lambda r: r["p"]) == sorted(scored_rows, key=lambda r: r["p_calibrated"])
    raw_mean = sum(r["p"] for r in scored_rows) / 12
    assert figures["n"] == 12 and figures["mean_before"] == pytest.approx(raw_mean)
    assert figures["mean_after"] == pytest.approx(0.62, abs=1e-7) and figures["delta"] > 0
    # An aggregate over the rows works as the level too (the backtest's realised turnout).
    labelled = scored.select("p", (F.col("w") > 0.5).cast("double").alias("label"))
    back, _ = shift_to_mean(labelled, "p", F.avg("label"))
    assert back.agg(F.avg("p_calibrated")).first()[0] == pytest.approx(7 / 12, abs=1e-7)


def test_logit_shift_weighted_share_calibration(spark, scored):
    share_schema = T.StructType([T.StructField("precinct", T.StringType(), False),
                                 T.StructField("share", T.DoubleType(), True)])
    shares = spark.createDataFrame([("A", 0.3), ("B", 0.55), ("C", None)], share_schema)

    targets = share_targets(shares, ["precinct"], "share", scored, "p", weight_col="w")
    calibrated, shifts = logit_shift(scored, ["precinct"], "p", targets, "target", weight_col="w")

    weight_a = sum(r[3] for r in SCORED_ROWS if r[1] == "A")
    weight_b = sum(r[3] for r in SCORED_ROWS if r[1] == "B")
    expected_targets = spark.createDataFrame(
        [("A", 0.3 * weight_a), ("B", 0.55 * weight_b), ("C", None)], TARGET_SCHEMA)
    assertDataFrameEqual(targets, expected_targets, rtol=0.0, atol=1e-12)
    assertDataFrameEqual(
        shifts, _expected_shifts(spark, {"A": 0.3 * weight_a, "B": 0.55 * weight_b}, weighted=True),
        rtol=0.0, atol=1e-6)
    # The turnout-weighted mean calibrated support equals the share.
    means = calibrated.groupBy("precinct").agg(
        (F.sum(F.col("w") * F.col("p_calibrated")) / F.sum("w")).alias("share"))
    assertDataFrameEqual(means.where(F.col("precinct") != "C"), shares.where(F.col("precinct") != "C"),
                         rtol=0.0, atol=1e-6)


def test_logit_shift_clamps_extreme_scores_and_targets(spark):
    scored = spark.createDataFrame(
        [("v1", "A", 0.0, 1.0), ("v2", "A", 1.0, 1.0), ("v3", "A", 0.5, 1.0),
         ("v4", "B", 0.2, 1.0), ("v5", "B", None, 1.0), ("v6", None, 0.4, 1.0)], SCORED_SCHEMA)
    targets = spark.createDataFrame([("A", 1.5), ("B", 7.0)], TARGET_SCHEMA)

    calibrated, shifts = logit_shift(scored, ["precinct"], "p", targets, "target", iterations=30)

    table = {r["precinct"]: r for r in shifts.collect()}
    assert table["A"]["predicted_after"] == pytest.approx(1.5, abs=1e-6)
    # B has one scored voter: a target of 7 is clamped just below 1.
    assert table["B"]["n"] == 1
    assert table["B"]["predicted_after"] == pytest.approx(1.0, abs=1e-5)
    assert all(math.isfinite(r["delta"]) for r in table.values())
    out = {r["voter"]: r["p_calibrated"] for r in calibrated.collect()}
    assert out["v5"] is None  # no score stays no score
    assert out["v6"] == 0.4  # no group key: no target, unchanged
    assert all(0.0 < v < 1.0 for k, v in out.items() if k not in ("v5", "v6"))


def test_logit_shift_limits_the_shift_of_tiny_groups(spark):
    scored = spark.createDataFrame([("v1", "A", 0.1, 1.0), ("v2", "A", 0.1, 1.0)], SCORED_SCHEMA)
    targets = spark.createDataFrame([("A", 1.99)], TARGET_SCHEMA)  # both voted: δ ≈ +7 would be needed

    calibrated, shifts = logit_shift(scored, ["precinct"], "p", targets, "target", iterations=30, max_shift=2.0)

    row = shifts.first()
    assert row["delta"] == 2.0
    expected = 1 / (1 + math.exp(-(math.log(0.1 / 0.9) + 2.0)))
    assert row["predicted_after"] == pytest.approx(2 * expected)
    assert [r["p_calibrated"] for r in calibrated.collect()] == pytest.approx([expected, expected])


def test_precinct_results_sums_modes_and_candidates(spark):
    rows = [
        # P01: two modes, two REP candidates, a write-in without party, other offices.
        ("P01", "STATE SENATE", "DEMOCRAT", "ELECTION DAY", "120", "ALPHA", "CANDIDATE A", "007"),
        ("P01", "STATE SENATE", "DEMOCRAT", "ONE STOP", "30", "ALPHA", "CANDIDATE A", "007"),
        ("P01", "STATE SENATE", "REPUBLICAN", "ELECTION DAY", "80", "ALPHA", "CANDIDATE B", "007"),
        ("P01", "STATE SENATE", "REPUBLICAN", "ONE STOP", "10", "ALPHA", "CANDIDATE C", "007"),
        ("P01", "STATE SENATE", None, "ELECTION DAY", "4", "ALPHA", "WRITEIN", "007"),
        ("P01", "STATE SENATE", "DEMOCRAT", "ELECTION DAY", "999", "ALPHA", "CANDIDATE D", "008"),
        ("P01", "US HOUSE", "DEMOCRAT", "ELECTION DAY", "500", "ALPHA", "CANDIDATE E", "007"),
        # P02: TOTAL rows beside per-mode rows: only the TOTAL rows count.
        ("P02", "State Senate", "DEMOCRAT", "TOTAL", "40", "ALPHA", "CANDIDATE A", "7"),
        ("P02", "State Senate", "DEMOCRAT", "ELECTION DAY", "40", "ALPHA", "CANDIDATE A", "7"),
        ("P02", "State Senate", "REPUBLICAN", "TOTAL", "60", "ALPHA", "CANDIDATE B", "7"),
        # P03: no two-party votes; an unparseable count is missing, not an error.
        ("P03", "STATE SENATE", "DEMOCRAT", "ELECTION DAY", "0", "ALPHA", "CANDIDATE A", "007"),
        ("P03", "STATE SENATE", "REPUBLICAN", "ELECTION DAY", "n/a", "ALPHA", "CANDIDATE B", "007"),
        # A pseudo-precinct of the early vote, in another county.
        ("EARLY VOTING", "STATE SENATE", "DEMOCRAT", "ONE STOP", "1,200", "BETA", "CANDIDATE A", "007"),
        ("EARLY VOTING", "STATE SENATE", "REPUBLICAN", "ONE STOP", "800", "BETA", "CANDIDATE B", "007"),
    ]
    raw = spark.createDataFrame(rows, MEDSL_SCHEMA)

    result = precinct_results(raw, "state senate", district="007")

    expected = spark.createDataFrame([
        ("ALPHA", "P01", 150, 90, 150 / 240),
        ("ALPHA", "P02", 40, 60, 0.4),
        ("ALPHA", "P03", 0, 0, None),
        ("BETA", "EARLY VOTING", 1200, 800, 0.6),
    ], RESULTS_SCHEMA)
    assertDataFrameEqual(result, expected)
    # Without a district every district of the office is summed.
    p01 = precinct_results(raw, "STATE SENATE").where(F.col("precinct") == "P01")
    assertDataFrameEqual(p01, spark.createDataFrame([("ALPHA", "P01", 1149, 90, 1149 / 1239)], RESULTS_SCHEMA))

    voters = spark.createDataFrame([("ALPHA", "P01"), ("ALPHA", "P02"), ("ALPHA", "P03"), ("BETA", None)],
                                   "county_name string, precinct string")
    matched, unmatched = match_precincts(result, voters, ["county_name", "precinct"])
    assertDataFrameEqual(matched, expected.where(F.col("county_name") == "ALPHA"))
    assertDataFrameEqual(unmatched, expected.where(F.col("county_name") == "BETA"))


def test_ballots_cast(spark):
    raw = spark.createDataFrame([
        ("P01", "BALLOTS CAST", None, "ELECTION DAY", "300", "ALPHA", None, None),
        ("P01", "BALLOTS CAST", None, "ABSENTEE", "25", "ALPHA", None, None),
        ("P02", "Ballots Cast", None, "TOTAL", "90", "ALPHA", None, None),
        ("P02", "Ballots Cast", None, "ELECTION DAY", "90", "ALPHA", None, None),
        ("P01", "US HOUSE", "DEMOCRAT", "ELECTION DAY", "200", "ALPHA", "CANDIDATE E", "007"),
    ], MEDSL_SCHEMA)
    schema = "county_name string, precinct string, ballots long"
    expected = spark.createDataFrame([("ALPHA", "P01", 325), ("ALPHA", "P02", 90)], schema)

    assertDataFrameEqual(ballots_cast(raw), expected)
    assert ballots_cast(raw.where(F.col("office") == "US HOUSE")).count() == 0


def test_precinct_error(spark):
    actual = spark.createDataFrame([
        ("ALPHA", "P01", 60, 40, 0.6), ("ALPHA", "P02", 10, 30, 0.25), ("ALPHA", "P03", 30, 70, 0.3),
        ("ALPHA", "P04", 5, 5, 0.5),
    ], RESULTS_SCHEMA)
    pred = spark.createDataFrame([("ALPHA", "P01", 0.5), ("ALPHA", "P02", 0.35), ("ALPHA", "P03", 0.2),
                                  ("ALPHA", "P09", 0.9)], "county_name string, precinct string, share double")

    err = precinct_error(pred, actual, ["county_name", "precinct"], "share", "two_party_share")

    assert err["n"] == 3
    assert err["mae"] == pytest.approx(0.1)
    assert err["median_ae"] == pytest.approx(0.1)
    assert err["weighted_mae"] == pytest.approx(0.1)
    assert err["bias"] == pytest.approx((-0.1 + 0.1 - 0.1) / 3)
    assert err["pred_only"] == 1 and err["actual_only"] == 1
    weighted = precinct_error(pred.where(F.col("precinct") != "P02"), actual, ["county_name", "precinct"],
                              "share", "two_party_share", weight_col="dem_votes")
    assert weighted["weighted_mae"] == pytest.approx((60 * 0.1 + 30 * 0.1) / 90)


@pytest.mark.skipif(not CHATHAM.is_file(), reason=f"real results not found at {CHATHAM}")
def test_real_chatham_results(spark):
    raw = spark.read.option("header", True).csv(str(CHATHAM))
    # The 18 geographic precincts of the county's voter file.
    geographic = ["15", "18", "20", "21", "24", "3", "30", "42", "45", "6", "75", "78", "85", "9",
                  "ESC114", "MCH110", "NWM117", "PIT113"]
    voters = spark.createDataFrame([("CHATHAM", p) for p in geographic], "county_name string, precinct string")

    house = precinct_results(raw, "US HOUSE", district="6")
    totals = house.agg(F.count("*").alias("rows"), F.sum("dem_votes").alias("dem"),
                       F.sum("rep_votes").alias("rep")).first()
    located, pseudo = match_precincts(house, voters, ["county_name", "precinct"])
    located_totals = located.agg(F.count("*").alias("rows"), F.sum("dem_votes").alias("dem"),
                                 F.sum("rep_votes").alias("rep")).first()

    assert raw.count() == 3694
    assert raw.select("office").distinct().count() == 18
    assert (totals["rows"], totals["dem"], totals["rep"]) == (21, 20444, 15526)
    assert sorted(r["precinct"] for r in pseudo.collect()) == ["ABSENTEE BY MAIL", "ONE STOP", "PROVISIONAL"]
    # Early, mail and provisional votes are only on the pseudo-precincts: the
    # located (Election Day) vote is a third of the total and far less Democratic.
    assert (located_totals["rows"], located_totals["dem"], located_totals["rep"]) == (18, 5070, 6459)
    assert ballots_cast(raw).count() == 0


# --------------------------------------------------------------------------- calibration to results

VOTER_SCHEMA = T.StructType([
    T.StructField("county_name", T.StringType(), True),
    T.StructField("precinct", T.StringType(), True),
    T.StructField("voter", T.StringType(), False),
    T.StructField("turnout_prob", T.DoubleType(), True),
    T.StructField("support_prob", T.DoubleType(), True),
])
# Voters as of the election: precincts A and B have results, C has none.
ELECTION_ROWS = [
    ("ALPHA", "A", "e1", 0.2, 0.3), ("ALPHA", "A", "e2", 0.5, 0.6), ("ALPHA", "A", "e3", 0.7, 0.8),
    ("ALPHA", "A", "e4", 0.9, 0.4),
    ("ALPHA", "B", "e5", 0.1, 0.5), ("ALPHA", "B", "e6", 0.4, 0.2), ("ALPHA", "B", "e7", 0.6, 0.7),
    ("ALPHA", "C", "e8", 0.5, 0.5), ("ALPHA", "C", "e9", 0.3, 0.5),
]
# Voters today: other people and probabilities; D did not exist at the election.
CURRENT_ROWS = [
    ("ALPHA", "A", "c1", 0.3, 0.5), ("ALPHA", "A", "c2", 0.8, 0.1), ("ALPHA", "A", "c3", None, 0.6),
    ("ALPHA", "B", "c4", 0.45, 0.35),
    ("ALPHA", "C", "c5", 0.6, 0.2),
    ("ALPHA", "D", "c6", 0.7, 0.9),
]
BALLOTS = {"A": 3.0, "B": 2.0}
SHARES = {"A": 1 / 3, "B": 0.5}
RESULT_ROWS = [
    ("A", "BALLOTS CAST", None, "TOTAL", "3", "ALPHA", None, None),
    ("A", "US HOUSE", "DEMOCRAT", "TOTAL", "1", "ALPHA", "CANDIDATE D", "001"),
    ("A", "US HOUSE", "REPUBLICAN", "TOTAL", "2", "ALPHA", "CANDIDATE R", "001"),
    ("A", "STATE SENATE", "DEMOCRAT", "TOTAL", "3", "ALPHA", "CANDIDATE S", "001"),
    ("B", "BALLOTS CAST", None, "TOTAL", "2", "ALPHA", None, None),
    ("B", "US HOUSE", "DEMOCRAT", "TOTAL", "1", "ALPHA", "CANDIDATE D", "001"),
    ("B", "US HOUSE", "REPUBLICAN", "TOTAL", "1", "ALPHA", "CANDIDATE R", "001"),
    # The county's absentee votes, on a pseudo-precinct the voter file does not have.
    ("ABSENTEE", "BALLOTS CAST", None, "TOTAL", "5", "ALPHA", None, None),
    ("ABSENTEE", "US HOUSE", "DEMOCRAT", "TOTAL", "3", "ALPHA", "CANDIDATE D", "001"),
    ("ABSENTEE", "US HOUSE", "REPUBLICAN", "TOTAL", "1", "ALPHA", "CANDIDATE R", "001"),
]


def _group(rows, precinct: str, col: int) -> list[float]:
    return [r[col] for r in rows if r[1] == precinct]


def _shifted(p: float | None, delta: float) -> float | None:
    return None if p is None else _sigmoid(_logit(p) + delta)


def _calibrated_rows(rows, deltas_t: dict, deltas_s: dict):
    return [(*r, _shifted(r[3], deltas_t.get(r[1], 0.0)), _shifted(r[4], deltas_s.get(r[1], 0.0))) for r in rows]


CALIBRATED_SCHEMA = T.StructType([*VOTER_SCHEMA.fields, T.StructField("turnout_prob_calibrated", T.DoubleType()),
                                  T.StructField("support_prob_calibrated", T.DoubleType())])


def test_calibrate_to_results_solves_on_the_election_and_shifts_current_scores(spark):
    election = spark.createDataFrame(ELECTION_ROWS, VOTER_SCHEMA)
    current = spark.createDataFrame(CURRENT_ROWS, VOTER_SCHEMA)
    results = spark.createDataFrame(RESULT_ROWS, MEDSL_SCHEMA)

    cal = calibrate_to_results(election, current, results, office="US HOUSE", district="001", iterations=20)

    # Turnout: each precinct's election-date probabilities add up to its ballots cast.
    delta_t = {g: _reference_delta(_group(ELECTION_ROWS, g, 3), [1.0] * len(_group(ELECTION_ROWS, g, 3)), b)
               for g, b in BALLOTS.items()}
    # Support: the target is the share x the voters' calibrated turnout, weighted by it.
    weights = {g: [_shifted(t, delta_t.get(g, 0.0)) for t in _group(ELECTION_ROWS, g, 3)] for g in "ABC"}
    delta_s = {g: _reference_delta(_group(ELECTION_ROWS, g, 4), weights[g], share * sum(weights[g]))
               for g, share in SHARES.items()}
    unweighted = _reference_delta(_group(ELECTION_ROWS, "A", 4), [1.0] * 4, SHARES["A"] * sum(weights["A"]))
    assert abs(unweighted - delta_s["A"]) > 0.05  # the weights matter in this data

    def expected_table(deltas: dict, targets: dict, col: int, w: dict | None):
        rows = []
        for g in "ABC":
            probs = _group(ELECTION_ROWS, g, col)
            ws = w[g] if w else [1.0] * len(probs)
            d = deltas.get(g, 0.0)
            before = sum(wi * pi for wi, pi in zip(ws, probs))
            after = sum(wi * _shifted(pi, d) for wi, pi in zip(ws, probs))
            rows.append(("ALPHA", g, d, len(probs), targets.get(g), before, after))
        return spark.createDataFrame(rows, "county_name string, precinct string, delta double, n long, "
                                           "target double, predicted_before double, predicted_after double")

    support_targets = {g: share * sum(weights[g]) for g, share in SHARES.items()}
    assertDataFrameEqual(cal.shifts["turnout"], expected_table(delta_t, BALLOTS, 3, None), rtol=0.0, atol=1e-6)
    assertDataFrameEqual(cal.shifts["support"], expected_table(delta_s, support_targets, 4, weights),
                         rtol=0.0, atol=1e-6)
    sums = {r["precinct"]: r for r in cal.election.groupBy("precinct").agg(
        F.sum("turnout_prob_calibrated").alias("ballots"),
        (F.sum(F.col("turnout_prob_calibrated") * F.col("support_prob_calibrated"))
         / F.sum("turnout_prob_calibrated")).alias("share")).collect()}
    for g in BALLOTS:
        assert sums[g]["ballots"] == pytest.approx(BALLOTS[g], abs=1e-6)
        assert sums[g]["share"] == pytest.approx(SHARES[g], abs=1e-6)

    # Today's probabilities move by the same shifts; C (no results) and D (no election voters) do not.
    expected_current = spark.createDataFrame(_calibrated_rows(CURRENT_ROWS, delta_t, delta_s), CALIBRATED_SCHEMA)
    assertDataFrameEqual(cal.current, expected_current, rtol=0.0, atol=1e-6)
    unchanged = cal.current.where(F.col("precinct").isin("C", "D")).collect()
    assert all(r["turnout_prob_calibrated"] == r["turnout_prob"] and r["support_prob_calibrated"] == r["support_prob"]
               for r in unchanged)

    # The absentee pseudo-precinct is reported, not silently dropped.
    assert [r["precinct"] for r in cal.unmatched["turnout"].collect()] == ["ABSENTEE"]
    assert [r["precinct"] for r in cal.unmatched["support"].collect()] == ["ABSENTEE"]
    report = calibration_report(cal)
    turnout, support = report["turnout"], report["support"]
    assert (turnout["result_precincts"], turnout["matched_precincts"], turnout["unmatched_precincts"]) == (3, 2, 1)
    assert turnout["unmatched"] == ["ALPHA / ABSENTEE"]
    assert turnout["unmatched_vote_share"] == pytest.approx(round(5 / 10, 4))
    assert support["unmatched_vote_share"] == pytest.approx(round(4 / 9, 4))
    assert (turnout["voter_precincts_without_results"], turnout["voters_without_results"]) == (1, 2)
    before_a = sum(_group(ELECTION_ROWS, "A", 3)) - 3
    before_b = sum(_group(ELECTION_ROWS, "B", 3)) - 2
    assert turnout["ballots_error"]["before"]["mae"] == pytest.approx(round((abs(before_a) + abs(before_b)) / 2, 4))
    assert turnout["ballots_error"]["after"]["mae"] == pytest.approx(0.0, abs=1e-4)
    assert support["share_error"]["after"]["mae"] == pytest.approx(0.0, abs=1e-4)
    assert support["share_error"]["before"]["mae"] > 0.05


def test_calibrate_to_results_without_ballots_or_turnout_model(spark):
    results = spark.createDataFrame([r for r in RESULT_ROWS if r[1] != "BALLOTS CAST"], MEDSL_SCHEMA)

    # A turnout model but no BALLOTS CAST rows: turnout is left as is and weights the support.
    election = spark.createDataFrame(ELECTION_ROWS, VOTER_SCHEMA)
    cal = calibrate_to_results(election, spark.createDataFrame(CURRENT_ROWS, VOTER_SCHEMA), results,
                               district="1", iterations=20)
    assert cal.skipped == {"turnout": "the results have no BALLOTS CAST rows"}
    assert set(cal.shifts) == {"support"}
    raw_w = _group(ELECTION_ROWS, "A", 3)
    table = {r["precinct"]: r for r in cal.shifts["support"].collect()}
    assert table["A"]["delta"] == pytest.approx(
        _reference_delta(_group(ELECTION_ROWS, "A", 4), raw_w, SHARES["A"] * sum(raw_w)), abs=1e-6)
    assert cal.current.where(F.col("turnout_prob_calibrated").eqNullSafe(F.col("turnout_prob"))).count() == 6
    assert calibration_report(cal)["turnout"] == {"status": "not calibrated: the results have no BALLOTS CAST rows"}

    # No turnout model (no vote history): every voter counts 1 and the mean support hits the share.
    no_turnout = election.drop("turnout_prob")
    cal = calibrate_to_results(no_turnout, no_turnout, results, iterations=20)
    assert cal.weight is None and set(cal.columns) == {"support"}
    means = {r["precinct"]: r["m"] for r in cal.current.groupBy("precinct").agg(
        F.avg("support_prob_calibrated").alias("m")).collect()}
    assert means["A"] == pytest.approx(SHARES["A"], abs=1e-6)
    assert means["B"] == pytest.approx(SHARES["B"], abs=1e-6)
    assert means["C"] == pytest.approx(0.5)
    report = calibration_report(cal)
    assert set(report) == {"support"} and report["support"]["status"] == "calibrated"
    assert report["support"]["share_error"]["after"]["mae"] == pytest.approx(0.0, abs=1e-4)

