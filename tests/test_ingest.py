"""Landing → bronze: layouts as configuration, file checks, quarantine, reconciliation.

Real Spark, real Delta tables under a temp folder, small inline files. The
voter data here is invented; the real extracts are checked in test_real_data.py.
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake import erasure
from votelake.config import CONF_DIR, load_settings
from votelake.jobs import ingest
from votelake.lakehouse import Lakehouse
from votelake.layouts import LayoutError, header_difference, load_layout, parse_layout
from votelake.transforms import erasure as er
from votelake.transforms.canonicalize import canonical_records, wide_vote_history

LAYOUTS = CONF_DIR / "layouts"

# A small voter layout in the style of a state's: tab-separated with a header.
T_VOTERS = {
    "name": "t_voters",
    "kind": "voters",
    "state": "NC",
    "delimiter": "\t",
    "date_format": "MM/dd/yyyy",
    "columns": ["voter_id", "last_name", "first_name", "status", "party", "reg_date", "birth_year"],
    "fields": {"state_voter_id": "voter_id", "last_name": "last_name", "first_name": "first_name",
               "status": "status", "party": "party", "registration_date": "reg_date", "birth_year": "birth_year"},
    "codes": {"status": {"A": "ACTIVE", "I": "INACTIVE"}, "party": {"DEM": "DEM", "REP": "REP", "UNA": "UNA"}},
}
HEADER = "\t".join(T_VOTERS["columns"])
GOOD_ROWS = ["AA1\tSMITH\tJO\tA\tDEM\t01/02/2010\t1970", "AA2\tLEE\tKIM\tI\tREP\t03/04/2012\t1980"]


def _setup(tmp_path: Path, files: dict[str, bytes], layout: dict = T_VOTERS, folder: str = "voters",
           pattern: str = "*", **source: object) -> object:
    """Write landing files, a layouts folder and a config; return the settings."""
    layouts = tmp_path / "layouts"
    layouts.mkdir(exist_ok=True)
    for shipped in LAYOUTS.glob("*.yaml"):
        shutil.copy(shipped, layouts)
    (layouts / f"{layout['name']}.yaml").write_text(yaml.safe_dump(layout, sort_keys=False))
    landing = tmp_path / "landing" / folder
    landing.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (landing / name).write_bytes(content)
    conf = {
        "storage": {"lakehouse": str(tmp_path / "lake")},
        "quality": {"results_dir": str(tmp_path / "quality")},
        "landing": str(tmp_path / "landing"),
        "layouts": str(layouts),
        "sources": [{"name": "t_voters", "layout": layout["name"], "path": folder, "files": pattern, **source}],
    }
    path = tmp_path / "conf.yaml"
    path.write_text(yaml.safe_dump(conf))
    return load_settings(path)


def _lines(*rows: str, header: str | None = HEADER, end: str = "\n") -> bytes:
    return end.join(([header] if header else []) + list(rows)).encode() + end.encode()


def _nothing_written(settings) -> bool:
    return not (Path(settings.storage.lakehouse) / "bronze").exists()


def test_good_file_loads_with_line_numbers_and_reload_is_a_noop(spark, tmp_path):
    settings = _setup(tmp_path, {"voters_20240105.txt": _lines(*GOOD_ROWS)})
    report = ingest.run(spark, settings)["t_voters"]
    assert (report["read"], report["bronze"], report["quarantined"]) == (2, 2, 0)
    assert report["files"] == {"voters_20240105.txt": {"read": 2, "bronze": 2, "quarantined": 0}}
    lake = Lakehouse.open(spark, settings)
    got = lake.read("bronze.t_voters").select("voter_id", "_line")
    assertDataFrameEqual(got, spark.createDataFrame([("AA1", 2), ("AA2", 3)], "voter_id string, _line bigint"))
    again = ingest.run(spark, settings)["t_voters"]
    assert again["skipped"] == "already loaded"
    assert lake.read("bronze.t_voters").count() == 2


@pytest.mark.parametrize("name, source, expected", [
    # No date in the name or the config: the newest registration in the file
    # (the row registered in 2199 is a typo after the load, and is ignored).
    ("voters.txt", {}, "2012-03-04"),
    ("voters.txt", {"snapshot_date": "2023-06-30"}, "2023-06-30"),
    ("voters_20240105.txt", {"snapshot_date_pattern": r"voters_(\d{8})", "snapshot_date": "2023-06-30"}, "2024-01-05"),
])
def test_snapshot_date_comes_from_the_name_then_the_config_then_the_data(spark, tmp_path, name, source, expected):
    typo = "AA3\tROE\tAL\tA\tUNA\t01/01/2199\t1990"
    settings = _setup(tmp_path, {name: _lines(*GOOD_ROWS, typo)}, **source)
    ingest.run(spark, settings)
    dates = Lakehouse.open(spark, settings).read("bronze.t_voters").select("_snapshot_date").distinct()
    assertDataFrameEqual(dates, spark.createDataFrame(
        [(dt.date.fromisoformat(expected),)], T.StructType([T.StructField("_snapshot_date", T.DateType())])))


def test_undated_files_delivered_together_are_one_snapshot(spark, tmp_path):
    # Two slices of one statewide file (by county or ZIP), the second's newest registration older.
    settings = _setup(tmp_path, {"part_1.txt": _lines(GOOD_ROWS[1]), "part_2.txt": _lines(GOOD_ROWS[0])})
    ingest.run(spark, settings)
    dates = Lakehouse.open(spark, settings).read("bronze.t_voters").groupBy("_snapshot_date").count()
    assertDataFrameEqual(dates, spark.createDataFrame(
        [(dt.date(2012, 3, 4), 2)], "_snapshot_date date, count bigint"))


def test_a_file_nothing_dates_fails_before_anything_is_written(spark, tmp_path):
    undated = ["AA1\tSMITH\tJO\tA\tDEM\t\t1970"]
    settings = _setup(tmp_path, {"voters.txt": _lines(*undated)})
    with pytest.raises(LayoutError, match=r"cannot date \['voters.txt'\]"):
        ingest.run(spark, settings)
    assert _nothing_written(settings)


def test_defective_rows_go_to_quarantine_with_reason_file_and_line(spark, tmp_path):
    rows = [
        GOOD_ROWS[0],
        "\tNOID\tX\tA\tDEM\t01/02/2010\t1970",  # line 3: missing voter id
        "AA3\tBAD\tDATE\tA\tDEM\t13/45/2010\t1970",  # line 4: bad date
        "AA4\tODD\tCODE\tZ\tXYZ\t01/02/2010\t1970",  # line 5: two unknown codes
        "AA5\tSHORT\tROW\tA",  # line 6: too few columns
        "AA6\tLONG\tROW\tA\tDEM\t01/02/2010\t1970\textra",  # line 7: too many columns
        GOOD_ROWS[1],
        "AA7\tCUT\tOF",  # line 9: truncated last line (no newline at the end)
    ]
    content = _lines(*rows)[:-1]
    settings = _setup(tmp_path, {"v.txt": content})
    report = ingest.run(spark, settings)["t_voters"]
    assert (report["read"], report["bronze"], report["quarantined"]) == (8, 2, 6)
    lake = Lakehouse.open(spark, settings)
    quarantine = lake.read("bronze.quarantine").select("source", "_line", "reason")
    expected = spark.createDataFrame([
        ("t_voters", 3, "missing state_voter_id (voter_id)"),
        ("t_voters", 4, "bad date in registration_date (reg_date)"),
        ("t_voters", 5, "unknown status code 'Z' (status); unknown party code 'XYZ' (party)"),
        ("t_voters", 6, "wrong column count: 4 fields, layout t_voters has 7"),
        ("t_voters", 7, "wrong column count: 8 fields, layout t_voters has 7"),
        ("t_voters", 9, "wrong column count: 3 fields, layout t_voters has 7; "
                        "no line break after the last line: the file may be cut short"),
    ], "source string, _line bigint, reason string")
    assertDataFrameEqual(quarantine, expected)
    raw = lake.read("bronze.quarantine").where(F.col("_line") == 6).first()["raw"]
    assert raw == "AA5\tSHORT\tROW\tA"
    # Each quarantined line's exact bytes, to replay it.
    kept = {r["_line"]: bytes(r["raw_bytes"]) for r in lake.read("bronze.quarantine").collect()}
    assert kept == {line: content.split(b"\n")[line - 1] for line in (3, 4, 5, 6, 7, 9)}


def test_a_file_of_defective_rows_only_quarantines_them_all(spark, tmp_path):
    settings = _setup(tmp_path, {"v.txt": _lines("\tNOID\tX\tA\tDEM\t01/02/2010\t1970", "AA5\tSHORT\tROW\tA")})
    report = ingest.run(spark, settings)["t_voters"]
    assert (report["read"], report["bronze"], report["quarantined"]) == (2, 0, 2)


def test_implausible_years_and_dates_are_quarantined_without_their_values(spark, tmp_path):
    rows = [GOOD_ROWS[0],
            "AB1\tOLD\tX\tA\tDEM\t01/02/2010\t1800",  # line 3
            "AB2\tNEW\tX\tA\tDEM\t01/02/2010\t2100",  # line 4
            "AB3\tNEG\tX\tA\tDEM\t01/02/2010\t-5",  # line 5
            "AB4\tFUTURE\tX\tA\tDEM\t01/01/2199\t1970",  # line 6
            GOOD_ROWS[1]]
    settings = _setup(tmp_path, {"v.txt": _lines(*rows)}, snapshot_date="2024-01-05")
    report = ingest.run(spark, settings)["t_voters"]
    assert (report["read"], report["bronze"], report["quarantined"]) == (6, 2, 4)
    today = dt.datetime.now(dt.timezone.utc).date()  # the load's date
    year = f"implausible birth_year (birth_year): not between 1880 and {today.year}"
    expected = spark.createDataFrame([
        (3, year), (4, year), (5, year),
        (6, f"implausible registration_date (reg_date): not between 1900-01-01 and {today}"),
    ], "_line bigint, reason string")
    assertDataFrameEqual(Lakehouse.open(spark, settings).read("bronze.quarantine").select("_line", "reason"), expected)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_file_cut_inside_its_last_field_quarantines_that_line(spark, tmp_path, compress):
    """The cut line has every column and plausible values, so only the missing line break tells."""
    columns = ["voter_id", "last_name", "status", "party", "reg_date", "birth_year", "first_name"]
    layout = {**T_VOTERS, "name": "t_name_last", "columns": columns}
    rows = ["AA1\tSMITH\tA\tDEM\t01/02/2010\t1970\tJOANNE", "AA2\tLEE\tI\tREP\t03/04/2012\t1980\tKIMBERLY"]
    content = _lines(*rows, header="\t".join(columns))
    cut = content[:-6]  # the last first name loses "ERLY\n": "KIMB"
    name = "v.txt.gz" if compress else "v.txt"
    settings = _setup(tmp_path, {name: gzip.compress(cut) if compress else cut}, layout=layout)
    report = ingest.run(spark, settings)["t_voters"]
    assert (report["bronze"], report["quarantined"]) == (1, 1)
    assert report["reasons"] == {"no line break after the last line: the file may be cut short": 1}
    (tmp_path / "whole").mkdir()
    whole = _setup(tmp_path / "whole", {name: gzip.compress(content) if compress else content}, layout=layout)
    assert ingest.run(spark, whole)["t_voters"]["quarantined"] == 0


def test_files_named_with_spaces_and_plus_signs_load_under_their_names(spark, tmp_path):
    """Spark names a file by its URI (a space as %20, a + kept): each row still finds its file."""
    name = "voters 2024+01.txt"
    settings = _setup(tmp_path, {name: _lines(*GOOD_ROWS, "AA7\tCUT\tOF")[:-1]})
    report = ingest.run(spark, settings)["t_voters"]
    assert report["files"] == {name: {"read": 3, "bronze": 2, "quarantined": 1}}
    assert report["reasons"] == {"wrong column count: 3 fields, layout t_voters has 7; "
                                 "no line break after the last line: the file may be cut short": 1}
    loaded = Lakehouse.open(spark, settings).read("bronze.t_voters").select("_load_id").distinct().collect()
    assert [r[0] for r in loaded] == report["load_ids"]


def test_rows_an_erasure_names_are_counted_per_file_and_kept_out_of_bronze(spark, tmp_path):
    layout = {**yaml.safe_load((LAYOUTS / "contacts.yaml").read_text()), "name": "t_contacts"}

    def row(contact: str, phone: str) -> str:
        return f"{contact},,JO,SMITH,1 MAIN ST,RALEIGH,27605,{phone},,door,2026-07-20T13:08:31,NOT_HOME,,,p"

    header = ",".join(layout["columns"])
    settings = _setup(tmp_path, {"a.csv": _lines(row("c1", "919-555-0101"), row("c2", "919-555-0102"), header=header),
                                 "b.csv": _lines(row("c3", "(919) 555-0101"), header=header)}, layout=layout)
    (delivery,) = ingest.plan_deliveries(settings)
    salt = "test-salt"
    forgotten = er.digest(salt, "phone", er.normalize("phone", "919-555-0101"))
    suppressed = erasure.Suppression({"phone": frozenset({forgotten})}, salt)
    lake = Lakehouse.open(spark, settings, job="ingest")
    report = ingest.load_delivery(spark, lake, delivery, dt.datetime(2026, 8, 1), suppressed)
    assert report["files"] == {"a.csv": {"read": 2, "bronze": 1, "quarantined": 0, "erased": 1},
                               "b.csv": {"read": 1, "bronze": 0, "quarantined": 0, "erased": 1}}
    assert (report["read"], report["bronze"], report["quarantined"], report["erased"]) == (3, 1, 0, 2)
    assert [r[0] for r in lake.read("bronze.t_voters").select("contact_id").collect()] == ["c2"]


def test_a_load_whose_counts_disagree_does_not_reconcile():
    """Rows read per file must all be written once, and each table must commit the rows counted for it."""
    good = {"table": "bronze.t", "read": {"/l/a.txt": 3, "/l/b.txt": 2},
            "bronze": {"/l/a.txt": 2, "/l/b.txt": 1}, "quarantined": {"/l/a.txt": 1, "/l/b.txt": 0},
            "erased": {"/l/a.txt": 0, "/l/b.txt": 1}, "committed_bronze": 3, "committed_quarantine": 1}
    ingest.reconcile(**good)
    lost = {**good, "bronze": {"/l/a.txt": 1, "/l/b.txt": 1}, "committed_bronze": 2}
    with pytest.raises(RuntimeError, match=r"does not reconcile: .*a\.txt: read 3, bronze 1, quarantined 1, erased 0"):
        ingest.reconcile(**lost)
    with pytest.raises(RuntimeError, match=r"3 row\(s\) written to bronze\.t, Delta committed 4"):
        ingest.reconcile(**{**good, "committed_bronze": 4})
    with pytest.raises(RuntimeError, match=r"1 row\(s\) written to the quarantine, Delta committed 0"):
        ingest.reconcile(**{**good, "committed_quarantine": 0})


def test_wrong_encoding_rows_are_quarantined(spark, tmp_path):
    latin1_row = "AA9\tMU\xd1OZ\tJOS\xc9\tA\tDEM\t01/02/2010\t1970".encode("latin-1")
    content = _lines(GOOD_ROWS[0]) + latin1_row + b"\n"
    settings = _setup(tmp_path, {"v.txt": content})
    report = ingest.run(spark, settings)["t_voters"]
    assert (report["bronze"], report["quarantined"]) == (1, 1)
    assert report["reasons"] == {"bytes not valid in the layout's encoding (utf-8)": 1}
    quarantined = Lakehouse.open(spark, settings).read("bronze.quarantine").first()
    assert "\ufffd" in quarantined["raw"] and bytes(quarantined["raw_bytes"]) == latin1_row


def test_latin1_file_reads_cleanly_with_its_declared_encoding(spark, tmp_path):
    layout = {**T_VOTERS, "name": "t_latin1", "encoding": "iso-8859-1"}
    row = "AA9\tMU\xd1OZ\tJOS\xc9\tA\tDEM\t01/02/2010\t1970".encode("latin-1")
    settings = _setup(tmp_path, {"v.txt": HEADER.encode() + b"\r\n" + row + b"\r\n"}, layout=layout)
    assert ingest.run(spark, settings)["t_voters"]["bronze"] == 1
    names = Lakehouse.open(spark, settings).read("bronze.t_voters").select("last_name", "first_name").first()
    assert (names[0], names[1]) == ("MU\u00d1OZ", "JOS\u00c9")  # decoded, no carriage return left


@pytest.mark.parametrize(
    "files, message",
    [
        ({"v.txt": b""}, "the file is empty"),
        ({"v.txt": _lines(*[r.replace("\t", ",") for r in GOOD_ROWS], header=HEADER.replace("\t", ","))},
         "wrong delimiter? the layout says '\\t', the line contains ','"),
        ({"v.txt": _lines(*GOOD_ROWS, header=HEADER + "\tprecinct")}, "extra: precinct"),
        ({"v.txt": _lines(*GOOD_ROWS, header=HEADER.replace("first_name", "frst_name"))},
         "renamed-looking: first_name → frst_name"),
        ({"v.txt": "voter_id\tlast_name\tfirst_name\n".encode("utf-16")}, "not valid utf-8"),
    ],
    ids=["empty", "wrong-delimiter", "extra-column", "renamed-column", "wrong-encoding-header"],
)
def test_file_level_problems_fail_before_anything_is_written(spark, tmp_path, files, message):
    settings = _setup(tmp_path, {"good.txt": _lines(*GOOD_ROWS), **files})
    with pytest.raises(LayoutError) as err:
        ingest.run(spark, settings)
    assert message in str(err.value)
    assert "nothing was loaded" in str(err.value)
    assert _nothing_written(settings)


def test_headerless_file_with_a_wrong_column_count_fails_naming_both(spark, tmp_path):
    layout = {**T_VOTERS, "name": "t_noheader", "header": False}
    settings = _setup(tmp_path, {"v.txt": _lines("AA1\tSMITH\tJO", header=None)}, layout=layout)
    with pytest.raises(LayoutError, match="expects 7 columns, the first line has 3"):
        ingest.run(spark, settings)
    assert _nothing_written(settings)


def test_missing_required_source_fails(spark, tmp_path):
    settings = _setup(tmp_path, {"v.txt": _lines(*GOOD_ROWS)}, pattern="nomatch_*")
    with pytest.raises(LayoutError, match="source t_voters: no files matching 'nomatch_\\*'"):
        ingest.run(spark, settings)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"fields": {**T_VOTERS["fields"], "first_name": "frist_name"}},
         "field 'first_name' maps to unknown column 'frist_name' (did you mean 'first_name'?)"),
        ({"fields": {**T_VOTERS["fields"], "shoe_size": "party"}}, "field 'shoe_size' is not a canonical voters field"),
        ({"codes": {**T_VOTERS["codes"], "party": {"DEM": "DEMOCRAT"}}}, "['DEMOCRAT'] not in the canonical party codes"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"fields": {"last_name": "last_name"}}, "required canonical field(s) not mapped: state_voter_id"),
        ({"encoding": "cp1252"}, "encoding 'cp1252' is not one Spark reads"),
    ],
    ids=["unknown-column", "unknown-field", "bad-code-target", "unknown-key", "unmapped-id", "bad-encoding"],
)
def test_bad_layout_yaml_fails_naming_the_problem(change, message):
    with pytest.raises(LayoutError) as err:
        parse_layout({**T_VOTERS, **change}, "test")
    assert message in str(err.value)


def test_nc_2022_rename_is_reported_against_the_previous_layout():
    current = load_layout(LAYOUTS, "nc_ncvoter")
    previous = load_layout(LAYOUTS, "nc_ncvoter_2018")
    diff = header_difference(current, [previous.header_name(c) for c in previous.columns])
    assert "layout nc_ncvoter expects 67 columns, the file has 71" in diff
    # Name similarity pairs the renames it can see; a guess, hence "looking".
    assert "renamed-looking: middle_name → midl_name, name_suffix_lbl → name_sufx_cd, birth_state → birth_age" in diff
    assert "missing: age_at_year_end" in diff
    assert "extra: absent_ind, name_prefx_cd, birth_place, dist_2_abbrv, dist_2_desc" in diff
    # The old layout inherits the current one's code tables and only renames fields.
    assert previous.codes == current.codes
    assert previous.source_columns("middle_name") == ("midl_name",)


def test_wide_vote_history_columns_become_vote_rows(spark, tmp_path):
    layout = load_layout(LAYOUTS, "oh_swvf")
    fixed = [layout.header_name(c) for c in layout.columns]
    header = ",".join(fixed + ["PRIMARY-03/17/2020", "GENERAL-11/03/2020"])

    def row(voter: str, primary: str, general: str) -> str:
        values = {"sos_voterid": voter, "county_number": "31", "last_name": "DOE", "first_name": "ALEX",
                  "date_of_birth": "1/2/1980", "registration_date": "10/5/2004", "voter_status": "ACTIVE",
                  "party_affiliation": "D", "residential_zip": "45202"}
        return ",".join([values.get(c, "") for c in layout.columns] + [primary, general])

    content = "\n".join([header, row("OH1", "D", "X"), row("OH2", "", "X"), row("OH3", "", "")]) + "\n"
    settings = _setup(tmp_path, {"45202.csv.gz": gzip.compress(content.encode())}, layout={
        **yaml.safe_load((LAYOUTS / "oh_swvf.yaml").read_text()), "name": "oh_test"})
    report = ingest.run(spark, settings)["t_voters"]
    assert (report["bronze"], report["quarantined"]) == (3, 0)
    bronze = Lakehouse.open(spark, settings).read("bronze.t_voters")
    votes = wide_vote_history(canonical_records(bronze, layout), layout).select(
        "state_voter_id", "election_date", "election_type", "voted_party")
    expected = spark.createDataFrame([
        ("OH1", "2020-03-17", "PRIMARY", "DEM"), ("OH1", "2020-11-03", "GENERAL", None),
        ("OH2", "2020-11-03", "GENERAL", None),
    ], "state_voter_id string, election_date string, election_type string, voted_party string").select(
        "state_voter_id", F.to_date("election_date").alias("election_date"), "election_type", "voted_party")
    assertDataFrameEqual(votes, expected)


def test_canonical_records_translate_codes_and_types(spark):
    layout = parse_layout(T_VOTERS, "test")
    schema = T.StructType([T.StructField(c, T.StringType()) for c in layout.columns]
                          + [T.StructField(c, T.StringType()) for c in ("_source_file", "_load_id")]
                          + [T.StructField("_snapshot_date", T.DateType())])
    bronze = spark.createDataFrame([("AA1", "Smith ", "jo", "a", "dem", "01/02/2010", "1970.0", "f", "l", None)], schema)
    got = canonical_records(bronze, layout).select(
        "state_voter_id", "last_name", "status", "party", "registration_date", "birth_year", "race")
    expected = spark.createDataFrame(
        [("AA1", "Smith", "ACTIVE", "DEM", "2010-01-02", 1970, None)],
        "state_voter_id string, last_name string, status string, party string, d string, birth_year int, race string",
    ).select("state_voter_id", "last_name", "status", "party", F.to_date("d").alias("registration_date"),
             "birth_year", "race")
    assertDataFrameEqual(got, expected)
