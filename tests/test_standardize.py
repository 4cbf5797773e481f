"""Standardization of US addresses and person names, and households built on them."""

from __future__ import annotations

import hashlib

import pytest
import usaddress
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake.transforms.address import (
    ADDRESS_STRUCT,
    PARSER,
    _tag,
    clean_address_text,
    new_parses,
    parse_address,
    parse_address_text,
    parse_keys,
    standardize_addresses,
)
from votelake.transforms.households import households, person_households
from votelake.transforms.standardize import normalize_suffix, split_name_suffix

RAW_SCHEMA = T.StructType([T.StructField("id", T.IntegerType()), T.StructField("raw", T.StringType())])
PARTS_SCHEMA = T.StructType([T.StructField("id", T.IntegerType()), *ADDRESS_STRUCT.fields])

# raw → house, predir, street name, type, postdir, unit type, unit number, key, line, status
ADDRESS_CASES = [
    ("123 North Main Street Apt 4", ("123", "N", "MAIN", "ST", None, "APT", "4", "123 N MAIN ST", "123 N MAIN ST APT 4", "ok")),
    ("123 n main st # 4", ("123", "N", "MAIN", "ST", None, "#", "4", "123 N MAIN ST", "123 N MAIN ST # 4", "ok")),
    ("123 N. MAIN ST UNIT 4", ("123", "N", "MAIN", "ST", None, "UNIT", "4", "123 N MAIN ST", "123 N MAIN ST UNIT 4", "ok")),
    ("123  N MAIN  ST APARTMENT 4  ", ("123", "N", "MAIN", "ST", None, "APT", "4", "123 N MAIN ST", "123 N MAIN ST APT 4", "ok")),
    ("123 main st apt#4", ("123", None, "MAIN", "ST", None, "APT", "4", "123 MAIN ST", "123 MAIN ST APT 4", "ok")),
    ("456 south oak avenue", ("456", "S", "OAK", "AVE", None, None, None, "456 S OAK AVE", "456 S OAK AVE", "ok")),
    ("9 Elm Road East", ("9", None, "ELM", "RD", "E", None, None, "9 ELM RD E", "9 ELM RD E", "ok")),
    ("77 Cedar Drive", ("77", None, "CEDAR", "DR", None, None, None, "77 CEDAR DR", "77 CEDAR DR", "ok")),
    ("12 Willow Lane", ("12", None, "WILLOW", "LN", None, None, None, "12 WILLOW LN", "12 WILLOW LN", "ok")),
    ("5 Windsor Court", ("5", None, "WINDSOR", "CT", None, None, None, "5 WINDSOR CT", "5 WINDSOR CT", "ok")),
    ("1200 NC Highway 54 W", ("1200", None, "NC HWY 54", None, "W", None, None, "1200 NC HWY 54 W", "1200 NC HWY 54 W", "ok")),
    ("10 dogwood ln lot 7", ("10", None, "DOGWOOD", "LN", None, "LOT", "7", "10 DOGWOOD LN", "10 DOGWOOD LN LOT 7", "ok")),
    ("4321 Old Farm Rd, Suite 200", ("4321", None, "OLD FARM", "RD", None, "STE", "200", "4321 OLD FARM RD", "4321 OLD FARM RD STE 200", "ok")),
    ("MAIN ST", (None, None, "MAIN", "ST", None, None, None, "MAIN ST", "MAIN ST", "ambiguous")),
    ("P.O. Box 123", (None, None, None, None, None, None, None, "PO BOX 123", "PO BOX 123", "failed")),
    ("zzzz qqqq", (None, None, None, None, None, None, None, "ZZZZ QQQQ", "ZZZZ QQQQ", "failed")),
    ("!!!", (None,) * 9 + ("failed",)),
    ("", (None,) * 9 + ("failed",)),
    (None, (None,) * 9 + ("failed",)),
]


def _address_frames(spark):
    raw = spark.createDataFrame([(i, r) for i, (r, _) in enumerate(ADDRESS_CASES)], RAW_SCHEMA)
    expected = spark.createDataFrame([(i, *parts) for i, (_, parts) in enumerate(ADDRESS_CASES)], PARTS_SCHEMA)
    return raw, expected


def test_standardize_addresses_parts_keys_and_status(spark):
    raw, expected = _address_frames(spark)
    out = standardize_addresses(raw, "raw")
    assert out.columns == ["id", "raw", "address"]
    assertDataFrameEqual(out.select("id", "address.*"), expected)
    # the Column function, which parses every row, gives the same result
    assertDataFrameEqual(raw.select("id", parse_address("raw").alias("address")).select("id", "address.*"), expected)


def test_stored_parses_give_the_same_addresses_and_only_new_texts_are_parsed(spark):
    raw, expected = _address_frames(spark)
    first, later = raw.where("id < 10"), raw
    stored = new_parses(parse_keys(first, "raw"), None).cache()
    # The next delivery repeats the first's texts (in another case and spacing) and adds new ones.
    again = later.select("id", F.upper(F.regexp_replace("raw", " ", "  ")).alias("raw"))
    added = new_parses(parse_keys(again, "raw"), stored)
    assert set(r.parse_key for r in added.collect()) == {
        r.parse_key for r in parse_keys(raw.where("id >= 10"), "raw").collect()} - {
        r.parse_key for r in stored.collect()}
    # Parses made by another parser version are parsed anew.
    assert new_parses(parse_keys(first, "raw"), stored.withColumn("parser", F.lit("older"))).count() == \
        stored.count() > 0
    assert {r.parser for r in stored.collect()} == {PARSER}
    out = standardize_addresses(later, "raw", parses=stored.unionByName(added))
    assertDataFrameEqual(out.select("id", "address.*"), expected)


def test_standardize_addresses_appends_a_secondary_line(spark):
    df = spark.createDataFrame([(1, "88 Maple Ave", "Unit 3b"), (2, "88 MAPLE AVE", None)],
                               "id int, line1 string, line2 string")
    out = standardize_addresses(df, "line1", out="addr", secondary="line2").select(
        "id", "addr.address_key", "addr.unit_type", "addr.unit_number")
    assertDataFrameEqual(out, spark.createDataFrame(
        [(1, "88 MAPLE AVE", "UNIT", "3B"), (2, "88 MAPLE AVE", None, None)],
        "id int, address_key string, unit_type string, unit_number string"))
    with pytest.raises(ValueError, match="already exists"):
        standardize_addresses(df, "line1", out="line2")


@pytest.mark.parametrize("raw", ["12 Oak St Apt 1", "3030 US 15-501 N", "123 1/2 MAIN ST", "45 APT 3 MAIN ST",
                                 "RR 2 BOX 45", "123 MAIN ST CHAPEL HILL NC 27514", "4 oak", "a", "1 2 3 4 5",
                                 "12 N MAIN ST BLDG 2 APT 4", "XYZZY", "100 e. main st., unit a"])
def test_tagger_agrees_with_usaddress(raw):
    text = clean_address_text(raw)
    assert _tag(text) == usaddress.parse(text)


def test_parser_never_raises():
    for value in (None, float("nan"), 12, "\x00", "#", "-", "/ /", "APT 4", "😀 1 MAIN ST", "1" * 500):
        assert parse_address_text(value)[-1] in ("ok", "ambiguous", "failed")


NAME_SCHEMA = T.StructType([T.StructField("id", T.IntegerType()), T.StructField("name", T.StringType())])


def test_split_name_suffix(spark):
    cases = [
        ("Smith, Jr.", "SMITH", "JR"), ("o'neil  iii", "O'NEIL", "III"), ("Van Der Berg 2nd", "VAN DER BERG", "II"),
        ("JONES 3RD", "JONES", "III"), ("Brown Junior", "BROWN", "JR"), ("Lee Sr", "LEE", "SR"),
        ("King IV", "KING", "IV"), ("Ford V", "FORD", "V"), ("DAVIS,JR", "DAVIS", "JR"),
        ("smith - jones ", "SMITH-JONES", None), ("JR", "JR", None), ("Mary-Ann", "MARY-ANN", None),
        ("  ", None, None), (None, None, None),
    ]
    df = spark.createDataFrame([(i, c[0]) for i, c in enumerate(cases)], NAME_SCHEMA)
    name, suffix = split_name_suffix("name")
    assertDataFrameEqual(
        df.select("id", name.alias("name"), suffix.alias("suffix")),
        spark.createDataFrame([(i, c[1], c[2]) for i, c in enumerate(cases)], "id int, name string, suffix string"),
    )
    first = spark.createDataFrame([(1, "John V"), (2, "john jr")], NAME_SCHEMA)
    name, suffix = split_name_suffix(F.col("name"), allow_v=False)
    assertDataFrameEqual(
        first.select("id", name.alias("name"), suffix.alias("suffix")),
        spark.createDataFrame([(1, "JOHN V", None), (2, "JOHN", "JR")], "id int, name string, suffix string"),
    )


def test_normalize_suffix(spark):
    cases = [("Jr.", "JR"), ("junior", "JR"), ("2nd", "II"), ("3RD", "III"), ("iv", "IV"), ("Sr", "SR"),
             ("Esq.", "ESQ"), ("", None), (None, None)]
    df = spark.createDataFrame([(i, c[0]) for i, c in enumerate(cases)], NAME_SCHEMA)
    assertDataFrameEqual(
        df.select("id", normalize_suffix("name").alias("suffix")),
        spark.createDataFrame([(i, c[1]) for i, c in enumerate(cases)], "id int, suffix string"),
    )


PERSON_SCHEMA = T.StructType([
    T.StructField("person_id", T.LongType()), T.StructField("state", T.StringType()),
    T.StructField("raw_address", T.StringType()), T.StructField("zip5", T.StringType()),
    T.StructField("city", T.StringType()),
])


def _hid(state, zip5, key, unit):
    return hashlib.sha256("\x1f".join([state, zip5, key, unit or ""]).encode()).hexdigest()[:32]


def test_households_are_unit_aware_and_skip_unusable_addresses(spark):
    raw = spark.createDataFrame([
        (1, "NC", "12 Oak St Apt 1", "27514", "Chapel Hill"),
        (2, "NC", "12 OAK ST APT 2", "27514", "Chapel Hill"),  # another unit: another household
        (3, "NC", " 12 oak street  apartment 1 ", "27514", "chapel hill"),  # same as 1, other case/spacing
        (4, "NC", "12 Oak St", "27514", "Chapel Hill"),  # no unit: its own household
        (5, "NC", "12  OAK ST", "27514", "Carrboro"),
        (6, "NC", None, "27514", "Chapel Hill"),  # no address: no household
        (7, "NC", "PO Box 5", "27514", "Chapel Hill"),  # failed parse: no household
        (8, "NC", "12 Oak St # 1", "27516", "Pittsboro"),  # same line, other ZIP
    ], PERSON_SCHEMA)
    parsed = standardize_addresses(raw, "raw_address")
    persons = parsed.select("person_id", "state", "address.address_key", "address.unit_number",
                            "address.parse_status", "zip5", "city")
    h1, h2 = _hid("NC", "27514", "12 OAK ST", "1"), _hid("NC", "27514", "12 OAK ST", "2")
    h0, h8 = _hid("NC", "27514", "12 OAK ST", None), _hid("NC", "27516", "12 OAK ST", "1")
    assertDataFrameEqual(
        households(persons),
        spark.createDataFrame([
            (h1, "NC", "12 OAK ST", "1", "27514", "CHAPEL HILL", 2),
            (h2, "NC", "12 OAK ST", "2", "27514", "CHAPEL HILL", 1),
            (h0, "NC", "12 OAK ST", None, "27514", "CARRBORO", 2),  # tie of cities: the smallest
            (h8, "NC", "12 OAK ST", "1", "27516", "PITTSBORO", 1),
        ], "household_id string, state string, address_key string, unit_number string, zip5 string, "
           "city string, size int"),
    )
    assertDataFrameEqual(
        person_households(persons),
        spark.createDataFrame([(1, h1), (2, h2), (3, h1), (4, h0), (5, h0), (6, None), (7, None), (8, h8)],
                              "person_id long, household_id string"),
    )
    # Without parse_status only null or blank keys are unusable.
    no_status = spark.createDataFrame([(1, "NC", "12 OAK ST", None, "27514", "X"), (2, "NC", " ", None, "27514", "X")],
                                      "person_id long, state string, address_key string, unit_number string, "
                                      "zip5 string, city string")
    assertDataFrameEqual(person_households(no_status),
                         spark.createDataFrame([(1, h0), (2, None)], "person_id long, household_id string"))
