"""Tests of the synthetic state generator on a small state (3,000 persons)."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path

import pytest
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from conftest import synthetic_state_settings
from votelake.config import CONF_DIR, SynthSettings
from votelake.jobs import build, ingest
from votelake.lakehouse import Lakehouse
from votelake.layouts import load_layout
from votelake.synth import SNAPSHOT_DATE, build_frames, campaign, generate
from votelake.synth.census_names import SLOTS_PER_PERCENT, census_table
from votelake.synth.generate import read_truth
from votelake.synth.next_delivery import CHANGE_SHARES, write_next_delivery

LAYOUTS = CONF_DIR / "layouts"
N = 3000


@pytest.fixture(scope="module")
def synth(spark, tmp_path_factory):
    """Generate one small state for the whole module."""
    settings = SynthSettings(voters=N, seed=7, out=tmp_path_factory.mktemp("synth"), partitions=2)
    report = generate(spark, settings, LAYOUTS)
    return settings, report


def _tsv(spark, path: Path):
    return spark.read.option("sep", "\t").option("header", True).csv(str(path))


def _csv(spark, path: Path):
    return spark.read.option("header", True).csv(str(path))


def _first_line(folder: Path) -> str:
    part = sorted(p for p in folder.iterdir() if p.name.startswith("part-"))[0]
    opener = gzip.open if part.suffix == ".gz" else open
    with opener(part, "rt") as fh:
        return fh.readline().rstrip("\n")


def test_headers_match_layouts(synth):
    settings, report = synth
    # The outputs, and nothing of the staging it went through.
    assert sorted(p.name for p in Path(settings.out).iterdir()) == ["landing", "truth"]
    for name, layout, sep in [("ncvoter", "nc_ncvoter", "\t"), ("ncvhis", "nc_ncvhis", "\t"),
                              ("contacts", "contacts", ",")]:
        assert _first_line(report.paths[name]).split(sep) == list(load_layout(LAYOUTS, layout).columns)
    assert _first_line(report.paths["experiments"]).split(",") == [
        "state_voter_id", "experiment_id", "arm", "assigned_at"] == list(load_layout(LAYOUTS, "experiments").columns)
    assert _first_line(report.paths["results"]).split(",") == [
        "precinct", "office", "party_detailed", "party_simplified", "mode", "votes", "county_name", "candidate",
        "district", "date", "state_po"]
    assert len([p for p in report.paths["results"].iterdir() if p.name.startswith("part-")]) == 1
    ncvoter_parts = [p for p in report.paths["ncvoter"].iterdir() if p.name.startswith("part-")]
    assert len(ncvoter_parts) == 2


def test_row_counts_reconcile(spark, synth):
    _, report = synth
    assert report.rows["ncvoter"] == _tsv(spark, report.paths["ncvoter"]).count()
    assert report.rows["ncvhis"] == _tsv(spark, report.paths["ncvhis"]).count()
    assert report.rows["contacts"] == spark.read.option("header", True).csv(str(report.paths["contacts"])).count()
    assert report.rows["digital"] == spark.read.json(str(report.paths["digital"])).count()
    assert report.rows["truth_registrations"] == report.rows["ncvoter"]
    assert report.rows["truth_contacts"] == report.rows["contacts"]
    assert report.rows["truth_digital"] == report.rows["digital"]
    assert report.rows["truth_persons"] == N
    assert report.rows["results"] == _csv(spark, report.paths["results"]).count()


def test_deterministic_regardless_of_partitioning(spark, synth):
    settings, report = synth
    written = _tsv(spark, report.paths["ncvoter"]).na.fill("")
    again = build_frames(spark, settings.model_copy(update={"partitions": 3}), LAYOUTS)["ncvoter"]
    assertDataFrameEqual(written, again)


def test_ids_and_history_link(spark, synth):
    _, report = synth
    voter = _tsv(spark, report.paths["ncvoter"])
    hist = _tsv(spark, report.paths["ncvhis"])
    assert hist.join(voter, "ncid", "left_anti").count() == 0
    assert voter.where(~F.col("ncid").rlike("^[A-Z]{2}[0-9]{6,}$")).count() == 0
    assert voter.groupBy("county_id", "voter_reg_num").count().where("count > 1").count() == 0
    assert voter.select("county_id").distinct().count() > 50


def test_truth_probabilities_in_range(spark, synth):
    _, report = synth
    truth = spark.read.parquet(str(report.paths["truth_registrations"]))
    bad = truth.where(
        ~F.col("p_turnout").between(0, 1) | ~F.col("p_support").between(0, 1)
        | ~(F.col("p_support") + F.col("uplift")).between(0, 1))
    assert bad.count() == 0


def _general_2024(spark, report):
    return _general(spark, report, "11/05/2024")


def _general(spark, report, label: str):
    """Registrations eligible for the general of ``label`` (mm/dd/yyyy) with ``voted`` 1.0 or 0.0."""
    truth = spark.read.parquet(str(report.paths["truth_registrations"]))
    e = F.to_date(F.lit(label), "MM/dd/yyyy")
    eligible = truth.where(
        (F.add_months("birth_date", 216) <= e) & (F.date_add("reg_date", 25) <= e)
        & (F.col("removal_date").isNull() | (F.col("removal_date") > e)) & (F.col("status_cd") != "D"))
    voted = (_tsv(spark, report.paths["ncvhis"]).where(F.col("election_lbl") == label)
             .select("ncid", F.col("county_id").cast("int").alias("county_id"), "voter_reg_num",
                     F.lit(1.0).alias("voted")))
    return eligible.join(voted, ["ncid", "county_id", "voter_reg_num"], "left").na.fill(0.0, ["voted"])


def test_midterm_generals_draw_fewer_voters_than_presidential_ones(spark, synth):
    _, report = synth
    shares = {label: _general(spark, report, label).agg(F.avg("voted")).first()[0]
              for label in ("11/06/2018", "11/03/2020", "11/08/2022", "11/05/2024")}
    for midterm, presidential in (("11/06/2018", "11/03/2020"), ("11/08/2022", "11/05/2024")):
        assert shares[presidential] - shares[midterm] >= 0.10, shares


def test_marginals(spark, synth):
    _, report = synth
    g = _general_2024(spark, report)
    general = g.agg(F.avg("voted")).first()[0]
    assert 0.55 <= general <= 0.75
    truth = spark.read.parquet(str(report.paths["truth_registrations"]))
    hist = _tsv(spark, report.paths["ncvhis"])
    primary = hist.where(F.col("election_lbl") == "03/05/2024").count() / g.count()
    assert 0.15 <= primary <= 0.35
    rows = truth.count()
    dup = truth.where("is_duplicate").count() / rows
    assert 0.005 <= dup <= 0.02
    moved = truth.where("moved AND row_kind = 'current'").count() / N
    assert 0.03 <= moved <= 0.08
    contacts = spark.read.parquet(str(report.paths["truth_contacts"]))
    # ~4% in the ID program, ~10% of the audience in the experiment (all called back).
    assert 0.08 <= contacts.select("person_id").distinct().count() / N <= 0.20
    voter = _tsv(spark, report.paths["ncvoter"])
    shares = {r["party_cd"]: r["count"] / rows for r in voter.groupBy("party_cd").count().collect()}
    assert 0.25 <= shares["DEM"] <= 0.40 and 0.24 <= shares["REP"] <= 0.36 and 0.30 <= shares["UNA"] <= 0.44
    status = {r["status_cd"]: r["count"] / rows for r in voter.groupBy("status_cd").count().collect()}
    assert 0.72 <= status["A"] <= 0.88
    moved_rows = voter.where((F.col("status_cd") == "R") & (F.col("reason_cd") == "RL")).count()
    assert moved_rows == truth.where("row_kind = 'moved_old'").count()


def test_oracle_auc(spark, synth):
    _, report = synth
    g = _general_2024(spark, report)
    auc = BinaryClassificationEvaluator(rawPredictionCol="p_presidential", labelCol="voted").evaluate(g)
    assert auc > 0.7


def test_campaign_outputs(spark, synth):
    _, report = synth
    contacts = spark.read.option("header", True).csv(str(report.paths["contacts"]))
    codes = {r["channel"]: set() for r in contacts.select("channel").distinct().collect()}
    for r in contacts.select("channel", "result_code").distinct().collect():
        codes[r["channel"]].add(r["result_code"])
    assert codes.get("door", set()) <= {"CANVASSED", "NOT_HOME", "REFUSED", "MOVED", "INACCESSIBLE"}
    assert codes.get("text", set()) <= {"REPLIED", "SENT", "OPTED_OUT", "UNDELIVERABLE"}
    ids = contacts.where(F.col("support_id").isNotNull()).select(F.col("support_id").cast("int").alias("s"))
    assert ids.where(~F.col("s").between(1, 5)).count() == 0
    window = contacts.where(~F.substring("attempted_at", 1, 10).between("2026-06-01", "2026-08-31"))
    assert window.count() == 0
    exp = spark.read.option("header", True).csv(str(report.paths["experiments"]))
    arms = {r["arm"] for r in exp.select("arm").distinct().collect()}
    assert arms == {"treatment", "control"}
    followup = contacts.where(F.col("program") == "followup_2026").join(
        exp.select("state_voter_id", "arm"), "state_voter_id")
    assert followup.select("arm").distinct().count() == 2
    digital = spark.read.json(str(report.paths["digital"]))
    assert {r["channel"] for r in digital.select("channel").distinct().collect()} == {"email", "sms", "web"}
    truth_d = spark.read.parquet(str(report.paths["truth_digital"]))
    assert truth_d.where(F.col("person_id").isNull()).count() > 0  # some keys are unlinkable
    assert SNAPSHOT_DATE.isoformat() == "2026-09-01"


def _audience(spark, report):
    """The campaign audience: current registrations not removed or denied."""
    truth = spark.read.parquet(str(report.paths["truth_registrations"]))
    return truth.where((F.col("row_kind") == "current") & F.col("status_cd").isin("A", "I", "S"))


def test_experiment_share_and_followup(spark, synth):
    settings, report = synth
    exp = _csv(spark, report.paths["experiments"])
    audience = _audience(spark, report).count()
    members = exp.count()
    assert abs(members / audience - settings.experiment_share) < 0.03
    arms = {r["arm"]: r["count"] for r in exp.groupBy("arm").count().collect()}
    assert abs(arms["treatment"] / members - 0.5) < 0.1
    assert exp.select("state_voter_id").distinct().count() == members
    # followup_share 1.0: the follow-up survey attempts every member, in both arms, once.
    followup = _csv(spark, report.paths["contacts"]).where(F.col("program") == "followup_2026")
    assert followup.count() == members
    truth_c = spark.read.parquet(str(report.paths["truth_contacts"]))
    called = truth_c.join(followup.select("contact_id"), "contact_id", "inner").select("person_id").distinct()
    assert called.count() == members


def test_program_shares_are_parameters(spark):
    # A plain audience of 10,000 people: only the draws keyed by person_id matter here.
    people = spark.range(10_000).select(
        F.col("id").alias("person_id"), F.format_string("AB%06d", "id").alias("ncid"),
        *[F.lit(v).alias(c) for c, v in [
            ("first_name", "ANN"), ("last_name", "LEE"), ("res_street_address", "1 MAIN ST"),
            ("res_city_desc", "RALEIGH"), ("zip_code", "27601"), ("phone_digits", "9195550100"),
            ("has_phone", True), ("has_email", False), ("email", ""), ("p_support", 0.5), ("uplift", 0.05),
            ("engagement", 0.0), ("party", "UNA")]])
    assigned = campaign.experiment_assignment(people, 7, 0.3).persist()
    members = assigned.where("in_exp").count()
    assert abs(members / 10_000 - 0.3) < 0.02
    followup = campaign.contact_attempts(assigned, 7, 0.5, 0.04).where(F.col("program") == "followup_2026")
    assert abs(followup.count() / members - 0.5) < 0.04
    assert campaign.contact_attempts(assigned, 7, 0.0, 0.04).where(F.col("program") == "followup_2026").count() == 0
    # The ID program attempts a share id_share of people, once to three times each.
    for share in (0.04, 0.2):
        ids = campaign.contact_attempts(assigned, 7, 0.0, share).where(F.col("program") == "id_2026")
        assert abs(ids.select("person_id").distinct().count() / 10_000 - share) < 0.01
    assigned.unpersist()


def test_results_match_ncvhis(spark, synth):
    _, report = synth
    results = _csv(spark, report.paths["results"]).select(
        "county_name", "precinct", "office", "party_simplified", "candidate", "district", "mode", "date",
        "state_po", F.col("votes").cast("long").alias("votes"))
    assert {r["date"] for r in results.select("date").distinct().collect()} == {"2024-11-05"}
    assert {r["mode"] for r in results.select("mode").distinct().collect()} == {"TOTAL"}
    assert {r["state_po"] for r in results.select("state_po").distinct().collect()} == {"NC"}
    offices = {(r["office"], r["party_simplified"], r["candidate"], r["district"])
               for r in results.select("office", "party_simplified", "candidate", "district").distinct().collect()}
    assert offices == {("BALLOTS CAST", None, None, None), ("US HOUSE", "DEMOCRAT", "CANDIDATE D", "001"),
                       ("US HOUSE", "REPUBLICAN", "CANDIDATE R", "001")}
    per_precinct = results.groupBy("county_name", "precinct").agg(
        F.count("*").alias("rows"),
        F.sum(F.when(F.col("office") == "BALLOTS CAST", F.col("votes"))).alias("ballots"),
        F.sum(F.when(F.col("office") == "US HOUSE", F.col("votes"))).alias("house"),
    )
    assert per_precinct.where((F.col("rows") != 3) | (F.col("house") != F.col("ballots"))).count() == 0
    ncvhis = (_tsv(spark, report.paths["ncvhis"]).where(F.col("election_lbl") == "11/05/2024")
              .groupBy(F.upper("county_desc").alias("county_name"), F.col("pct_label").alias("precinct"))
              .agg(F.count("*").alias("ballots")))
    # Exactly the ncvhis rows per precinct; precincts nobody voted in show zero.
    assertDataFrameEqual(per_precinct.where(F.col("ballots") > 0).select("county_name", "precinct", "ballots"),
                         ncvhis)
    # DEM share of the vote follows p_support: between the parties' shares of registrants.
    dem = results.where(F.col("party_simplified") == "DEMOCRAT").agg(F.sum("votes")).first()[0]
    total = results.where(F.col("office") == "BALLOTS CAST").agg(F.sum("votes")).first()[0]
    assert 0.3 < dem / total < 0.7


def test_truth_persons(spark, synth):
    _, report = synth
    persons = spark.read.parquet(str(report.paths["truth_persons"]))
    assert persons.columns == ["person_id", "p_turnout", "p_presidential", "p_support", "uplift", "p_primary",
                               "p_municipal"]
    assert persons.count() == persons.select("person_id").distinct().count() == N
    regs = spark.read.parquet(str(report.paths["truth_registrations"])).where(F.col("row_kind") == "current")
    assertDataFrameEqual(persons, regs.select(*persons.columns))
    truth = read_truth(spark, report.paths["truth_persons"].parents[1])
    assert set(truth) == {"registrations", "persons", "contacts", "digital"}


def _same_value_share(frame, column: str) -> float:
    """The chance that two rows drawn at random share ``column`` (Σ n_i(n_i - 1) / N(N - 1))."""
    counts = frame.groupBy(column).count()
    pairs = counts.agg(F.sum(F.col("count") * (F.col("count") - 1)).alias("same"), F.sum("count").alias("n")).first()
    return pairs["same"] / (pairs["n"] * (pairs["n"] - 1))


def test_names_collide_as_often_as_in_the_census(spark, synth):
    """Two strangers share a surname about as often as two Americans do (1990 census: 0.07%).

    The census tables give that chance as Σ share²; the former short lists made
    a shared surname about eight times as common.
    """
    _, report = synth
    truth = spark.read.parquet(str(report.paths["truth_registrations"])).where(F.col("row_kind") == "current")
    voter = _tsv(spark, report.paths["ncvoter"]).join(truth.select("ncid"), "ncid", how="inner").select(
        F.upper(F.trim("last_name")).alias("last_name"), F.upper(F.trim("first_name")).alias("first_name"),
        F.col("gender_code").alias("gender"))
    census_last = sum((share / 100) ** 2 for share in _census_shares("last"))
    assert 0.6 * census_last <= _same_value_share(voter, "last_name") <= 1.8 * census_last
    female = voter.where(F.col("gender") == "F")
    shares = _census_shares("female")
    census_female = sum(s * s for s in shares) / sum(shares) ** 2
    assert 0.6 * census_female <= _same_value_share(female, "first_name") <= 1.6 * census_female


def _census_shares(kind: str) -> list[float]:
    """The percent shares of the names a census table lists at 0.001 % or more."""
    return [slots / SLOTS_PER_PERCENT for _, slots in census_table(kind) if slots]


@pytest.fixture(scope="module")
def next_delivery(spark, synth, tmp_path_factory):
    """The module's state copied, then its next delivery written beside the first (the state stays as generated)."""
    settings, report = synth
    root = tmp_path_factory.mktemp("next")
    shutil.copytree(Path(settings.out) / "landing", root / "landing")
    delivery = write_next_delivery(spark, root / "landing", LAYOUTS, settings.seed, settings.partitions,
                                   truth=root / "truth")
    return root, delivery


def test_the_next_delivery_changes_one_percent_of_registrations_four_ways(spark, synth, next_delivery):
    _, report = synth
    root, delivery = next_delivery
    assert delivery.previous_snapshot == SNAPSHOT_DATE and delivery.snapshot == SNAPSHOT_DATE + dt.timedelta(days=7)
    assert delivery.paths["ncvoter"] == root / "landing" / "ncvoter" / f"snapshot_{delivery.snapshot:%Y%m%d}"
    assert _first_line(delivery.paths["ncvoter"]).split("\t") == list(load_layout(LAYOUTS, "nc_ncvoter").columns)
    # About 1% of the registrations on the rolls, each kind near its share (small counts at 3,000 persons).
    changed = sum(delivery.changes.values())
    assert 0.006 <= changed / delivery.on_rolls <= 0.014, delivery.changes
    for kind, share in CHANGE_SHARES.items():
        expected = 0.01 * share * delivery.on_rolls
        assert expected / 3 <= delivery.changes[kind] <= expected * 2.5 + 2, (kind, delivery.changes)
    # The files say what the truth says: compare the two snapshots registration by registration.
    key = ["county_id", "voter_reg_num"]
    old = _tsv(spark, report.paths["ncvoter"]).na.fill("")
    new = _tsv(spark, delivery.paths["ncvoter"]).na.fill("")
    assert new.count() == old.count() + delivery.changes["new"] == delivery.rows["ncvoter"]
    pairs = old.alias("o").join(new.alias("n"), on=key, how="full")
    differs = [F.col(f"o.{c}") != F.col(f"n.{c}") for c in ("res_street_address", "last_name", "status_cd")]
    found = pairs.select(
        *key, F.col("n.ncid").alias("ncid"),
        F.when(F.col("o.ncid").isNull(), "new").when(differs[0], "move").when(differs[1], "name")
        .when(differs[2] & (F.col("n.status_cd") == "R"), "removal").alias("change"))
    truth = spark.read.parquet(str(delivery.paths["changes"])).select("ncid", *key, "change")
    assertDataFrameEqual(found.where(F.col("change").isNotNull()).select("ncid", *key, "change"), truth)
    # Nothing else changed, and the new registrations carry new ids.
    unchanged = pairs.where(F.col("o.ncid").isNotNull()).join(truth, on=key, how="left_anti")
    cols = [c for c in old.columns if c not in key]
    assert unchanged.where(F.greatest(*[(F.col(f"o.{c}") != F.col(f"n.{c}")).cast("int") for c in cols]) > 0
                           ).count() == 0
    added = new.join(old.select("ncid"), on="ncid", how="left_semi")
    assert added.join(truth.where(F.col("change") == "new"), on="ncid", how="left_semi").count() == 0
    assert new.where(~F.col("ncid").rlike("^[A-Z]{2}[0-9]{6,}$")).count() == 0
    assert new.groupBy("county_id", "voter_reg_num").count().where("count > 1").count() == 0


def test_the_next_delivery_adds_one_day_of_campaign_events_in_new_files(spark, synth, next_delivery):
    _, report = synth
    root, delivery = next_delivery
    contacts = _csv(spark, report.paths["contacts"])
    newest = contacts.agg(F.max(F.to_date(F.substring("attempted_at", 1, 10)))).first()[0]
    assert delivery.event_day == newest + dt.timedelta(days=1) <= delivery.snapshot
    for name, fmt in (("contacts", "csv"), ("digital", "json")):
        assert delivery.paths[name].parent == root / "landing" / name
        df = _csv(spark, delivery.paths[name]) if fmt == "csv" else spark.read.json(str(delivery.paths[name]))
        ts = "attempted_at" if name == "contacts" else "event_ts"
        days = [r[0] for r in df.select(F.to_date(F.substring(ts, 1, 10))).distinct().collect()]
        assert days == [delivery.event_day] and df.count() == delivery.rows[name] > 0
    # A new day's contacts are new contact ids, about one average day of the earlier ones.
    new = _csv(spark, delivery.paths["contacts"])
    assert new.join(contacts, on="contact_id", how="left_semi").count() == 0
    assert _first_line(delivery.paths["contacts"]).split(",") == list(load_layout(LAYOUTS, "contacts").columns)


@pytest.mark.slow  # two ingests and a build: minutes on two cores
def test_the_build_runs_on_the_next_snapshot_beside_the_first(spark, synth, next_delivery):
    """Ingest the first delivery, then the next one, then build: removals end versions, new registrations start."""
    root, delivery = next_delivery
    settings = synthetic_state_settings(root / "state", N, f"landing={root / 'landing'}", "synth.partitions=2")
    # As they arrive: the first delivery alone (each load's rows are checked on their own), then the next.
    aside = root / "aside"
    aside.mkdir()
    for name in ("ncvoter", "contacts", "digital"):
        delivery.paths[name].rename(aside / name)
    ingest.run(spark, settings)
    for name in ("ncvoter", "contacts", "digital"):
        (aside / name).rename(delivery.paths[name])
    loaded = ingest.run(spark, settings)
    assert loaded["ncvoter"]["bronze"] == delivery.rows["ncvoter"]
    assert loaded["contacts"]["bronze"] == delivery.rows["contacts"]
    assert loaded["ncvhis"]["skipped"] == "already loaded"
    build.run(spark, settings)
    regs = Lakehouse.open(spark, settings).read("silver.registrations")
    newest = regs.where(F.col("is_current") & (F.col("valid_from") == F.lit(delivery.snapshot)))
    counts = {r["status"]: r["count"] for r in newest.groupBy("status").count().collect()}
    # New versions: moves, name changes and new registrations on the rolls, removals off them.
    assert counts["REMOVED"] == delivery.changes["removal"]
    assert sum(counts.values()) == sum(delivery.changes.values())
    assert regs.where(F.col("is_current")).count() == delivery.rows["ncvoter"]
