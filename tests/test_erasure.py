"""Erasure: ``votelake forget`` removes a person from every table version, export and artifact, for good.

The project the installed command made (``cli_project``: a small synthetic state through
``votelake pipeline``, shared with the CLI's tests); three people are then forgotten by one run of
the installed CLI with ``--purge-now`` (one by state voter id on the command line, one by e-mail and
one by phone in a request file), and every file under the project is searched for what identified
them. Then a new voter-file snapshot that still lists the first person is loaded and everything
rebuilt: the person is back in the public record (silver) but in no universe or export.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import votelake_cli
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake import erasure, exports
from votelake.config import load_settings
from votelake.jobs import build, ingest, score, segment, universes
from votelake.lakehouse import Lakehouse, canonical_sources
from votelake.locations import local_path
from votelake.transforms import erasure as er

pytestmark = pytest.mark.e2e


# --- the pure parts ---------------------------------------------------------------------------------------------

def test_normal_forms_and_hashes_agree_between_python_and_spark(spark):
    values = [("state_voter_id", " ab123 "), ("email", " Jane.Q@Example.ORG "), ("phone", "(919) 555-0142"),
              ("phone", "+1 919.555.0142")]
    df = spark.createDataFrame(values, "kind string, value string")
    got = {(r["kind"], r["value"]): (r["norm"], r["hash"]) for r in df.select(
        "kind", "value",
        F.when(F.col("kind") == "phone", er.normalized("phone", F.col("value")))
         .when(F.col("kind") == "email", er.normalized("email", F.col("value")))
         .otherwise(er.normalized("state_voter_id", F.col("value"))).alias("norm"),
        F.when(F.col("kind") == "phone", er.digested("s", "phone", F.col("value")))
         .when(F.col("kind") == "email", er.digested("s", "email", F.col("value")))
         .otherwise(er.digested("s", "state_voter_id", F.col("value"))).alias("hash")).collect()}
    for kind, value in values:
        norm = er.normalize(kind, value)
        assert got[(kind, value)] == (norm, er.digest("s", kind, norm))
    assert er.normalize("phone", "(919) 555-0142") == er.normalize("phone", "+19195550142") == "9195550142"


def test_rows_are_matched_by_any_identifier_column_and_raw_lines_by_field(spark):
    schema = T.StructType([T.StructField("person_id", T.StringType()), T.StructField("state_voter_id", T.StringType()),
                           T.StructField("state_voter_ids", T.ArrayType(T.StringType())),
                           T.StructField("email", T.StringType()), T.StructField("phone", T.StringType())])
    rows = spark.createDataFrame([("P1", "A1", ["A1"], None, None), ("P2", "b2", ["B2", "X9"], None, None),
                                  ("P3", "C3", ["C3"], "ME@X.ORG", None), ("P4", "D4", ["D4"], None, "+19195550142"),
                                  ("P5", "E5", ["E5"], "other@x.org", "9195550000")], schema)
    targets = er.Targets.of({"state_voter_id": ["x9", "a1"], "email": ["me@x.org"], "phone": ["919-555-0142"]})
    assertDataFrameEqual(rows.where(er.holds(rows.columns, targets)).select("person_id"),
                         spark.createDataFrame([("P1",), ("P2",), ("P3",), ("P4",)], "person_id string"))
    assert er.holds(["county_id"], targets) is None
    raw = spark.createDataFrame([("1,A1,x",), ('"2","XA1",y',), ("3|me@x.org|z",), ("4,(919) 555-0142,w",)],
                                "raw string")
    assertDataFrameEqual(raw.where(er.raw_holds(F.col("raw"), targets)),
                         spark.createDataFrame([("1,A1,x",), ("3|me@x.org|z",), ("4,(919) 555-0142,w",)],
                                               "raw string"))


def test_erased_voters_are_found_by_any_hash_of_their_person(spark):
    voters = spark.createDataFrame([("A1", "P1"), ("A2", "P1"), ("B1", "P2"), ("C1", "P3")],
                                   "state_voter_id string, person_id string")
    persons = spark.createDataFrame([("P1", None, None), ("P2", "b@x.org", None), ("P3", None, "+19195550142")],
                                    "person_id string, email string, phone string")
    hashes = {"state_voter_id": frozenset([er.digest("s", "state_voter_id", "A2")]),
              "email": frozenset([er.digest("s", "email", "b@x.org")])}
    assertDataFrameEqual(er.erased_voters(voters, persons, hashes, "s"), spark.createDataFrame(
        [("A1", er.ERASED_REASON), ("A2", er.ERASED_REASON), ("B1", er.ERASED_REASON)],
        "state_voter_id string, reason string"))


def test_masks_cover_every_written_form():
    patterns = erasure.masks(er.Targets.of({"state_voter_id": ["AB12"], "email": ["Me@X.org"],
                                            "phone": ["9195550142"]}))
    text = 'id AB12, not XAB12; "me@x.org"; (919) 555-0142 and +1 919.555.0142 and 9195550142x'
    assert erasure.mask_text(text, patterns) == ('id [erased], not XAB12; "[erased]"; [erased] and [erased] '
                                                 "and [erased]x")


# --- end to end -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def settings(cli_project):
    """The project's settings, read from the config file the installed command ran with."""
    made = cli_project["pipeline"] or cli_project["synth"]  # the pipeline, or the synth that kept it from running
    assert made.returncode == 0, f"{made.args[1]} failed:\n{made.stderr[-3000:]}"
    return load_settings(cli_project["conf"], environ={})


def _pick(spark, settings) -> dict:
    """Three people to forget: one in a GOTV export, one with a linked digital e-mail, one with a contact phone."""
    lake = Lakehouse.open(spark, settings)
    member = lake.read("gold.target_universes").orderBy("person_id").select("person_id").first()[0]
    registrations = lake.read("silver.registrations")
    voter_ids = sorted({r[0] for r in registrations.where(F.col("person_id") == member)
                        .select("state_voter_id").collect()})
    canonical = canonical_sources(lake, settings)
    linked = (canonical["digital"].join(lake.read("silver.digital_events"), on="event_id", how="inner")
              .where(F.col("person_id").isNotNull() & (F.col("person_id") != member) & F.col("email").isNotNull()))
    email_person, email = linked.orderBy("person_id").select("person_id", "email").first()
    contacted = (canonical["contacts"].join(lake.read("silver.contacts"), on="contact_id", how="inner")
                 .where(F.col("person_id").isNotNull() & ~F.col("person_id").isin(member, email_person)
                        & F.col("phone").isNotNull()))
    phone_person, phone = contacted.orderBy("person_id").select("person_id", "phone").first()
    return {"member": member, "voter_ids": voter_ids, "email_person": email_person, "email": email,
            "phone_person": phone_person, "phone": phone}


def _patterns(picked: dict) -> list[re.Pattern]:
    """What must not be found anywhere: the voter ids, the e-mail, the phone in any punctuation."""
    digits = re.sub(r"\D", "", picked["phone"])[-10:]
    return ([re.compile(rf"(?<![A-Za-z0-9]){re.escape(v)}(?![A-Za-z0-9])", re.I) for v in picked["voter_ids"]]
            + [re.compile(re.escape(picked["email"]), re.I),
               re.compile(r"(?<!\d)" + r"[\s().-]{0,2}".join(digits) + r"(?!\d)")])


def _found(root: Path, patterns: list[re.Pattern], skip: tuple[Path, ...]) -> list[str]:
    """Files under ``root`` holding any pattern: Parquet cell by cell, every other file byte by byte."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(path.is_relative_to(s) for s in skip):
            continue
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str)
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
        hits += [f"{path.relative_to(root)}: {p.pattern[:40]}" for p in patterns if p.search(text)]
    return hits


@pytest.fixture(scope="module")
def forgotten(spark, settings, cli_project, tmp_path_factory):
    """Three people picked from the project, then forgotten by one run of the installed command (one named
    on the command line, two in a request file); returns who they were and the command's result."""
    picked = _pick(spark, settings)
    root = cli_project["root"]
    before = _found(root, _patterns(picked), skip=(local_path(settings.landing).parent,))
    ids = tmp_path_factory.mktemp("request") / "ids.csv"
    ids.write_text(f"email,phone\n{picked['email']},\n,{picked['phone']}\n")
    cli = votelake_cli(root, "forget", "--state-voter-id", picked["voter_ids"][0], "--from-file", str(ids),
                       "--reason", f"asked by phone to be forgotten, said id {picked['voter_ids'][0]}",
                       "--purge-now", "--json-logs", "--conf", str(cli_project["conf"]))
    return {"picked": picked, "before": before, "cli": cli, "root": root}


def test_forget_through_the_cli_exits_zero_and_prints_no_identifier(forgotten):
    cli, picked = forgotten["cli"], forgotten["picked"]
    assert cli.returncode == 0, cli.stderr[-3000:]
    # --json-logs: the job's summary is a field of its last record.
    records = [json.loads(line) for line in cli.stderr.splitlines() if line.startswith("{")]
    summary = next(r["summary"] for r in records if r.get("job") == "forget" and "summary" in r)
    assert summary["persons"] >= 3 and summary["purged"] is True  # more only if another shares the phone or e-mail
    assert {"silver.registrations", "silver.persons", "gold.voter_scores", "gold.target_universes",
            "bronze.ncvoter"} <= set(summary["rows_deleted"])
    assert summary["exports_rewritten"] >= 1
    for text in (cli.stdout, cli.stderr):
        assert not any(p.search(text) for p in _patterns(picked))


def test_no_table_version_export_report_or_artifact_holds_them(forgotten, settings):
    # The identifiers were there: in tables, logs' neighbours, exports.
    assert any("lakehouse" in hit for hit in forgotten["before"])
    assert any("exports" in hit for hit in forgotten["before"])
    # Now nowhere under the project but the delivered landing files, which are the sender's.
    hits = _found(forgotten["root"], _patterns(forgotten["picked"]), skip=(local_path(settings.landing).parent,))
    assert hits == []


def test_export_manifests_count_the_files_as_rewritten(forgotten, settings):
    manifests = sorted(Path(settings.universes.exports).rglob(exports.MANIFEST))
    assert manifests
    for manifest in manifests:
        listed = exports.read_manifest(manifest.parent)
        files = {p.name: p for p in manifest.parent.iterdir() if p.suffix == ".csv" and p.name != exports.MANIFEST}
        assert sorted(row["file"] for row in listed) == sorted(files)
        for row in listed:
            data = files[row["file"]].read_bytes()
            assert int(row["voters"]) == data.count(b"\n") - 1  # less the header
            assert row["sha256"] == hashlib.sha256(data).hexdigest()


def test_the_audit_trail_holds_hashes_only_and_cannot_be_rewritten(spark, settings, forgotten):
    lake = Lakehouse.open(spark, settings)
    audit = lake.read(erasure.AUDIT)
    picked = forgotten["picked"]
    secret = erasure.salt(settings)
    expected = {("state_voter_id", er.digest(secret, "state_voter_id", er.normalize("state_voter_id", v)))
                for v in picked["voter_ids"]}
    expected |= {("email", er.digest(secret, "email", er.normalize("email", picked["email"]))),
                 ("phone", er.digest(secret, "phone", er.normalize("phone", picked["phone"])))}
    assert expected <= {(r["identifier_kind"], r["identifier_hash"]) for r in audit.collect()}
    assert audit.where(F.col("reason").contains(picked["voter_ids"][0])).count() == 0
    with pytest.raises(Exception, match="(?i)append"):
        lake.store.delete(lake.table(erasure.AUDIT), "true")
    publishes = lake.read("audit.publishes")
    assert {"gold.voter_scores", "gold.target_universes"} <= {r[0] for r in publishes.select("table_name").collect()}
    assert publishes.where(F.col("forced")).count() == 0


def test_a_later_voter_file_brings_them_back_to_the_record_but_never_into_a_universe(spark, settings, forgotten):
    picked = forgotten["picked"]
    # Next month's snapshot still lists everyone (the same rows, in another order, so new bytes).
    old = sorted((local_path(settings.landing) / "ncvoter").glob("snapshot_*"))[-1]
    new = old.with_name("snapshot_20261101")
    new.mkdir()
    for part in sorted(old.glob("*.csv")):
        header, *lines = part.read_text().splitlines(keepends=True)
        (new / part.name).write_text(header + "".join(reversed(lines)))
    # And the field tool sends the forgotten phone's contact rows again, in a new file.
    contacts = local_path(settings.landing) / "contacts"
    header, again = None, []
    for part in sorted(contacts.glob("*.csv")):
        first, *lines = part.read_text().splitlines(keepends=True)
        header, again = first, again + [line for line in lines if picked["phone"] in line]
    assert again
    (contacts / "resent.csv").write_text(header + "".join(again))
    loaded = ingest.run(spark, settings)
    assert loaded["contacts"]["erased"] == len(again) and loaded["contacts"]["bronze"] == 0
    for job in (build, score, segment):  # a universe selects by segment (conf/local.yaml)
        job.run(spark, settings)
    built = universes.run(spark, settings)
    lake = Lakehouse.open(spark, settings)
    phone = er.normalized("phone", F.col("phone"))
    assert lake.read("bronze.contacts").where(phone == er.normalize("phone", picked["phone"])).count() == 0
    back = lake.read("silver.registrations").where(F.col("state_voter_id").isin(picked["voter_ids"]))
    assert back.count() >= 1  # the public record lists them again
    scores = lake.read("gold.voter_scores")
    assert scores.where(F.exists("state_voter_ids", lambda v: v.isin(picked["voter_ids"]))).count() == 1
    members = lake.read("gold.target_universes")
    assert members.where(F.col("state_voter_id").isin(picked["voter_ids"])).count() == 0
    assert sum(u["suppressed"] for u in built["universes"].values()) >= 1
    exports = Path(str(settings.universes.exports))
    assert _found(exports, _patterns(picked)[:len(picked["voter_ids"])], skip=()) == []
