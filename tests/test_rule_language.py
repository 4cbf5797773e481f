"""Universe rules are a checked expression language: they compute what Spark SQL would, and nothing else runs."""

from __future__ import annotations

import pytest
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake.config import ConfigError, load_settings
from votelake.rules import RuleError, parse, rule_column

SCORES = T.StructType([
    T.StructField("person_id", T.StringType(), False),
    T.StructField("county_id", T.IntegerType(), True),
    T.StructField("precinct", T.StringType(), True),
    T.StructField("support_score", T.IntegerType(), True),
    T.StructField("turnout_score", T.IntegerType(), True),
    T.StructField("turnout_prob", T.DoubleType(), True),
    T.StructField("support_prob", T.DoubleType(), True),
    T.StructField("persuasion_decile", T.IntegerType(), True),
])
ROWS = [
    ("p1", 1, "P01", 80, 40, 0.40, 0.80, 9), ("p2", 1, "P02", 65, 90, 0.90, 0.65, 2),
    ("p3", 2, "E-12", 20, 55, 0.55, 0.20, 8), ("p4", 3, None, None, 10, 0.10, None, None),
    ("p5", 3, "E-01", 71, 30, 0.30, 0.71, 10),
]

# Rules a campaign writes: each must select and order exactly as Spark SQL does.
GOOD = [
    "support_score >= 70 AND turnout_score BETWEEN 30 AND 80",
    "persuasion_decile >= 8 AND turnout_score >= 50 OR county_id IN (1, 3)",
    "NOT (support_score < 60) AND precinct LIKE 'E-%'",
    "precinct IS NULL OR support_score IS NOT NULL AND county_id <> 2",
    "coalesce(support_score, 0) + 2 * turnout_score > 100",
    "CASE WHEN county_id = 1 THEN support_score ELSE -turnout_score END > 0",
    "IF(support_prob IS NULL, 0.5, support_prob) * (1 - turnout_prob) >= 0.2",
    "round(turnout_prob * 100, 0) % 20 = 10 OR greatest(support_score, turnout_score) >= 90",
    "CAST(turnout_score AS DOUBLE) / 100 = turnout_prob AND lower(precinct) <=> 'p01'",
    "upper(precinct) IN ('E-12', 'P02') AND abs(support_score - 50) > floor(length(precinct) * 2.5)",
]

# Each must be refused, naming what it tried.
HOSTILE = [
    ("reflect('java.lang.System', 'setProperty', 'votelake.pwned', 'yes') IS NOT NULL", "reflect"),
    ("java_method('java.lang.Runtime', 'getRuntime') IS NOT NULL", "java_method"),
    ("(SELECT max(value) FROM text.`/etc/passwd`) IS NOT NULL", "subquery"),
    ("person_id IN (SELECT person_id FROM silver.persons WHERE email LIKE '%@%')", "In"),
    ("EXISTS (SELECT 1 FROM silver.persons)", "subquery"),
    ("support_score > (SELECT 1)", "subquery"),
    ("input_file_name() <> ''", "input_file_name"),
    ("length(read_files('/etc/passwd')) > 0", "read_files"),
    ("support_score > 0; DROP TABLE gold.voter_scores", "2 statements"),
    ("support_score > 0 -- AND county_id = 1", "comment"),
    ("support_score > 0 /* hidden */ OR 1 = 1", "comment"),
    ("persons.email IS NOT NULL", "qualified column"),
    ("silver.persons.email = 'x'", "qualified column"),
    ("my_udf(support_score) > 1", "my_udf"),
    ("refl\u0435ct('java.lang.System', 'exit', 1) = 1", "U+0435"),  # a Cyrillic e
    ("support_score\u200b > 1", "U+200B"),  # a zero-width space
    ("\uff53upport_score > 1", "U+FF53"),  # a full-width s
    ("size(transform(array(1), x -> reflect('java.lang.System', 'exit', 1))) > 0", "size"),
    ("assert_true(support_score > 0) IS NULL", "assert_true"),
    ("raise_error('boom') IS NULL", "raise_error"),
    ("current_user() = 'root'", "current_user"),
    ("CAST(support_score AS BINARY) IS NOT NULL", "BINARY"),
    ("email LIKE '%@%'", "unknown column 'email'"),
    ("support_score > 0 UNION SELECT * FROM silver.persons", "Union"),
]


@pytest.fixture(scope="module")
def scores(spark):
    return spark.createDataFrame(ROWS, SCORES)


@pytest.mark.parametrize("rule", GOOD)
def test_a_rule_selects_what_spark_sql_selects(scores, rule):
    assertDataFrameEqual(scores.where(rule_column(rule, scores.columns)), scores.where(rule))


def test_a_priority_orders_as_spark_sql_does(scores):
    priority = "support_prob * turnout_prob * (1 - turnout_prob)"
    assertDataFrameEqual(scores.select("person_id", rule_column(priority, scores.columns).alias("p")),
                         scores.selectExpr("person_id", f"{priority} AS p"))


@pytest.mark.parametrize("rule, named", HOSTILE, ids=[f"hostile{i:02d}" for i in range(len(HOSTILE))])
def test_a_hostile_rule_is_refused_naming_what_it_tried(spark, scores, rule, named):
    with pytest.raises(RuleError) as err:
        scores.where(rule_column(rule, scores.columns)).collect()
    assert named.lower() in str(err.value).lower()
    # Nothing ran: the property the first rule would set through Java is still unset.
    assert _property(spark, "votelake.pwned") == "null"


def _property(spark, name: str) -> str:
    return spark.sql(f"SELECT reflect('java.lang.System', 'getProperty', '{name}')").first()[0]


def test_the_check_above_would_see_the_rule_run(spark):
    """The same call through Spark SQL does set the property: what the refused rules would have done."""
    spark.sql("SELECT reflect('java.lang.System', 'setProperty', 'votelake.control', 'yes')").collect()
    assert _property(spark, "votelake.control") == "yes"


def test_a_hostile_rule_in_config_fails_naming_the_key_before_any_spark_work():
    with pytest.raises(ConfigError) as err:
        load_settings(None, ["universes.definitions.gotv.priority=reflect('java.lang.System', 'exit', 1)"],
                      environ={})
    assert "universes.definitions.gotv.priority" in str(err.value) and "reflect" in str(err.value)


def test_the_shipped_rules_parse():
    for rule in load_settings(None, [], environ={}).universes.definitions.values():
        parse(rule.where), parse(rule.priority)
