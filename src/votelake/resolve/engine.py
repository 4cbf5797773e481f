"""Splink on Spark: the session hook-up, the comparisons, training and clean-up.

Everything Splink-specific lives here so that :mod:`dedupe` and :mod:`link`
read as data flow.

String similarity. Splink's Spark backend computes Jaro-Winkler with Scala
UDFs from a jar that ships inside the splink wheel
(``scala-udf-similarity-*_spark4.x.jar``, built for Spark 4 / Scala 2.13). It
loads on Spark 4.1: :func:`ensure_similarity_functions` adds it to the running
session with the SQL ``ADD JAR`` command (Maven is not needed, and the session
is not rebuilt), after which Splink registers the functions. Where a session
cannot load jars, ``string_similarity: levenshtein`` builds every comparison
from Spark SQL built-ins (``levenshtein``, ``soundex``, equality,
``arrays_overlap``) instead.

Intermediate tables. Splink breaks lineage after each heavy step. Its Spark
default writes Parquet into the SparkContext's checkpoint directory, which this
package never touches; ``persist`` keeps every plan whole, and Spark's cache
lookup then canonicalizes ever-growing plans on each query (EM iterations took
5-10 times longer). None of its methods is a local checkpoint, which cuts the
lineage as Parquet does but keeps the rows in the executors' block managers,
on their local disks: no folder the executors must share. (Held in memory
instead, they crowded out the build's own caches: a 200k-voter build took
483 s against Parquet's 417 s; on disk, 416 s.) So
:class:`CheckpointingSparkAPI` local-checkpoints the tables Splink would
break; with ``settings.work_dir`` set it keeps Splink's ``parquet`` method in
a per-run folder there instead (storage every executor sees, for clusters
that lose executors: a lost local checkpoint cannot be recomputed and fails
the build, to be run again). Results are local-checkpointed too, and the
folder is removed before the call returns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from splink.backends.spark import SparkAPI

from votelake import locations
from votelake.resolve.settings import ResolveSettings

logger = logging.getLogger(__name__)

JAR_FUNCTION = "jaro_winkler"
JAR_MARKER = "scala-udf-similarity"


def ensure_similarity_functions(spark: SparkSession) -> None:
    """Make the jar with Splink's similarity UDFs available to the session.

    Adds the jar shipped in the splink wheel with ``ADD JAR`` unless the
    functions are already registered or the jar was given at start-up
    (``spark.jars``). Splink's :class:`SparkAPI` then registers the functions.

    Args:
        spark: the running session.
    """
    if spark.catalog.functionExists(JAR_FUNCTION):
        return
    if JAR_MARKER in (spark.conf.get("spark.jars", "") or ""):
        return
    from splink.backends.spark import similarity_jar_location

    jar = similarity_jar_location()
    spark.sql(f"ADD JAR '{jar}'")
    logger.debug("added Splink similarity jar %s", jar)


# The tables Splink 5.0 breaks lineage after (its Spark API's own list, which it keeps inside a method):
# the blocked pairs, comparison vectors, predictions, term-frequency and clustering tables.
BROKEN_TABLES = re.compile("|".join([
    r"__splink__df_comparison_vectors", r"__splink__df_concat_sample", r"__splink__df_concat_with_tf",
    r"__splink__df_predict", r"__splink__df_tf_.+", r"__splink__df_representatives.*",
    r"__splink__representatives.*", r"__splink__df_neighbours", r"__splink__df_connected_components_df",
    r"__splink__blocked_id_pairs", r"__splink__marginal_exploded_ids_blocking_rule.*",
    r"__splink__nodes_in_play", r"__splink__edges_in_play", r"__splink__clusters_at_threshold",
    r"__splink__distinct_clusters_at_threshold", r"__splink__clusters_at_all_thresholds",
    r"__splink__clustering_output_final", r"__splink__stable_nodes_at_new_threshold",
    r"__splink__filtered_neighbours.*",
]))


class CheckpointingSparkAPI(SparkAPI):
    """Splink's Spark API breaking lineage with local checkpoints, or with Parquet in a given folder.

    Splink looks its Parquet folder up through the SparkContext's checkpoint
    directory; this subclass answers with its own folder instead, so nothing
    is set on the SparkContext.
    """

    def __init__(self, *, work_dir: str | None, **kwargs: Any) -> None:
        self.work_dir = work_dir
        self.checkpoints: list[DataFrame] = []
        super().__init__(break_lineage_method="parquet", **kwargs)

    def _get_checkpoint_dir_path(self, spark_df):  # noqa: D401 - Splink hook
        return self.work_dir

    def _break_lineage_and_repartition(self, spark_df, templated_name, physical_name):  # Splink hook
        if self.work_dir is not None:
            return super()._break_lineage_and_repartition(spark_df, templated_name, physical_name)
        # Splink's steps around the break, kept: its repartitioning before, and after it for the blocked pairs.
        spark_df = self._repartition_if_needed(spark_df, templated_name)
        if BROKEN_TABLES.fullmatch(templated_name):
            spark_df = spark_df.localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)
            self.checkpoints.append(spark_df)
        if templated_name == "__splink__blocked_id_pairs":
            spark_df = spark_df.repartition(self.num_partitions_on_repartition)
        return spark_df


def spark_api(spark: SparkSession, settings: ResolveSettings) -> CheckpointingSparkAPI:
    """A Splink Spark database API over the given session, breaking lineage as the settings say.

    Args:
        spark: the running session.
        settings: resolution settings (similarity mode, partitions, work folder).

    Returns:
        A :class:`CheckpointingSparkAPI`; release it with :func:`close`.
    """
    use_jar = settings.string_similarity == "jaro_winkler"
    # Splink registers its functions again for each API, and Spark warns of each one replaced: once a session.
    registered = use_jar and spark.catalog.functionExists(JAR_FUNCTION)
    if use_jar and not registered:
        ensure_similarity_functions(spark)
    work_dir = None
    if settings.work_dir is not None:
        work_dir = str(locations.join(settings.work_dir, f"resolve-{uuid.uuid4().hex[:12]}"))
        if not locations.is_uri(work_dir):  # on a store, Spark's writer makes the folder
            Path(work_dir).mkdir(parents=True, exist_ok=True)
    return CheckpointingSparkAPI(
        spark_session=spark,
        work_dir=work_dir,
        num_partitions_on_repartition=settings.num_partitions,
        register_udfs_automatically=use_jar and not registered,
    )


def close(db_api: CheckpointingSparkAPI, registered: Iterable[Any] = ()) -> None:
    """Drop every table Splink created and our registered inputs, and release its checkpoints or folder.

    Args:
        db_api: the API from :func:`spark_api`.
        registered: SplinkDataFrames we registered as inputs.
    """
    db_api.delete_tables_created_by_splink_from_db()
    for sdf in registered:
        db_api.spark.catalog.dropTempView(sdf.physical_name)
    for checkpoint in db_api.checkpoints:
        checkpoint.unpersist()
    if db_api.work_dir is not None:
        locations.remove_tree(db_api.work_dir)


def materialize(df: DataFrame) -> DataFrame:
    """Compute a result now and cut its lineage, so that Splink's tables can go.

    Args:
        df: a DataFrame derived from Splink's tables.

    Returns:
        The same rows, local-checkpointed (held by the executors; ``unpersist()``
        releases them).
    """
    return df.localCheckpoint(eager=True)


def key_collision_u(df: DataFrame, *cols: str) -> float:
    """u probability of "same value" for a key-like column combination, counted exactly.

    Random sampling cannot estimate the u of levels that random pairs almost
    never reach (two people sharing a phone). This counts the pairs that share
    the value among pairs where both are present (true matches included, which
    makes the estimate slightly conservative), with one pair added so that it
    is never zero.

    Args:
        df: the prepared input.
        cols: the columns that must all be equal.

    Returns:
        The probability that two random records with the columns present agree.
    """
    present = df.where(" AND ".join(f"{c} IS NOT NULL" for c in cols))
    groups = present.groupBy(*cols).agg(F.count("*").alias("n"))
    # One row: the pair totals.
    row = groups.agg(F.sum("n").alias("total"), F.sum(F.col("n") * (F.col("n") - 1)).alias("same")).first()
    total = int(row["total"] or 0)
    if total < 2:
        return 1e-6
    return (int(row["same"] or 0) + 2) / (total * (total - 1))


def model_dict(model: str | Mapping[str, Any]) -> dict[str, Any]:
    """A saved Splink model as a dict.

    Args:
        model: the model's JSON text, or the dict itself.

    Returns:
        A fresh dict (Splink may mutate what it is given), without the term
        frequencies (:func:`frequencies_of` reads those).
    """
    data = json.loads(model) if isinstance(model, str) else json.loads(json.dumps(dict(model)))
    data.pop(TF_KEY, None)
    return data


def model_json(linker) -> str:
    """The trained model as Splink JSON (comparisons, parameters, blocking rules).

    Args:
        linker: a trained ``splink.Linker``.

    Returns:
        Pretty-printed JSON text, loadable by :func:`model_dict`.
    """
    return json.dumps(linker.misc.save_model_to_json(), indent=2, sort_keys=True)


# The key under which a model's JSON keeps its term frequencies (Splink's own
# JSON has no place for them; :func:`model_dict` strips the key).
TF_KEY = "votelake_term_frequencies"
# Names fewer registrations than this hold could point at a person: they are
# not stored, and share their mean frequency instead.
TF_MIN_COUNT = 5


def tf_columns(model: Mapping[str, Any]) -> list[str]:
    """The columns a Splink model adjusts by term frequency."""
    return sorted({level["tf_adjustment_column"] for comparison in model.get("comparisons", [])
                   for level in comparison.get("comparison_levels", []) if level.get("tf_adjustment_column")})


def term_frequencies(prepared: DataFrame, columns: Iterable[str]) -> dict[str, Any]:
    """Each column's value frequencies, kept with the model so a pair's score depends only on the pair.

    Splink otherwise counts them anew from each input, so one changed
    registration would move the score of every pair sharing its name, and a
    refresh could not keep the pairs it did not rescore.

    Args:
        prepared: the Splink input the model is trained on.
        columns: the term-frequency columns (:func:`tf_columns`).

    Returns:
        ``{"min_count": TF_MIN_COUNT, "columns": {column: {"values": {value: tf}, "rare": tf}}}``;
        ``tf`` is the value's share of the non-null values, ``rare`` the
        mean share of the values held by fewer than ``min_count`` rows.
    """
    out: dict[str, Any] = {"min_count": TF_MIN_COUNT, "columns": {}}
    for col in columns:
        counts = prepared.where(F.col(col).isNotNull()).groupBy(col).agg(F.count("*").alias("n"))
        frequent = F.col("n") >= TF_MIN_COUNT
        # One row: the total, and the rare values' rows and count, for the shares below.
        totals = counts.agg(F.sum("n").alias("total"), F.sum(F.when(~frequent, F.col("n"))).alias("rare_rows"),
                            F.count(F.when(~frequent, 1)).alias("rare_values")).first()
        total = int(totals["total"] or 0)
        if total == 0:
            continue
        rows = counts.where(frequent).collect()  # the frequent values go into the model (a few per thousand rows)
        rare = (int(totals["rare_rows"] or 0) / max(int(totals["rare_values"] or 0), 1)) / total
        out["columns"][col] = {"values": {r[col]: r["n"] / total for r in rows}, "rare": rare or 1.0 / total}
    return out


def register_term_frequencies(db_api: SparkAPI, linker, prepared: DataFrame, frequencies: Mapping[str, Any]) -> list:
    """Register a lookup per term-frequency column: the model's frequency of each value in the input.

    Args:
        db_api: the Splink API of ``linker``.
        linker: the Linker that will predict.
        prepared: its input.
        frequencies: :func:`term_frequencies` of the model.

    Returns:
        The registered lookup tables (drop them with :func:`close`).
    """
    spark = prepared.sparkSession
    registered = []
    for col, table in frequencies.get("columns", {}).items():
        known = spark.createDataFrame(list(table["values"].items()), f"{col} string, _tf double")
        lookup = (prepared.where(F.col(col).isNotNull()).select(col).distinct()
                  .join(F.broadcast(known), on=col, how="left")
                  .select(col, F.coalesce(F.col("_tf"), F.lit(table["rare"])).alias(f"tf_{col}")))
        sdf = db_api.register(lookup)
        linker.table_management.register_term_frequency_lookup(sdf, col)
        registered.append(sdf)
    return registered


def with_frequencies(model_text: str, frequencies: Mapping[str, Any]) -> str:
    """The model JSON with its term frequencies under :data:`TF_KEY`."""
    return json.dumps({**json.loads(model_text), TF_KEY: frequencies}, indent=2, sort_keys=True)


def frequencies_of(model: str | Mapping[str, Any]) -> dict[str, Any] | None:
    """The term frequencies a model keeps, or None (a model saved before they were kept)."""
    data = json.loads(model) if isinstance(model, str) else model
    return data.get(TF_KEY)


def fingerprint(model: str) -> str:
    """A short hash of a model's JSON: two runs with the same fingerprint score every pair alike."""
    return hashlib.sha256(model.encode()).hexdigest()[:16]


def train(linker, settings: ResolveSettings, prior_rules: Iterable[str], prior_recall: float,
          training_rules: Iterable[str]) -> None:
    """Estimate the model: prior, u by random sampling, m by EM.

    An EM session can degenerate on small data (a blocking rule that admits
    only a handful of pairs, nearly all matches, drives some m to exactly zero,
    which Splink rejects). Such a session is skipped with a warning; the levels
    it would have estimated keep their starting values (see
    :func:`with_default_m`).

    Args:
        linker: an untrained ``splink.Linker``.
        settings: resolution settings (max pairs for u, seed).
        prior_rules: near-certain rules for the prior.
        prior_recall: share of all true matches the prior rules are expected to find.
        training_rules: one EM session per blocking rule.
    """
    linker.training.estimate_probability_two_random_records_match(list(prior_rules), recall=prior_recall)
    # One pass: Splink's probe-and-chunk scheme stops early only when every level
    # is seen often enough, which key levels (same phone) never are.
    linker.training.estimate_u_using_random_sampling(
        max_pairs=settings.max_pairs_u, seed=settings.seed, num_chunks=1)
    for rule in training_rules:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True
            )
        except ValueError as exc:
            logger.warning("EM blocked on %r gave unusable estimates, session skipped: %s", rule, exc)


def with_default_m(comparison: dict[str, Any], agree: float = 0.8) -> dict[str, Any]:
    """Give every non-null level a starting m probability (EM's start, and the fallback).

    The strongest level starts at ``agree`` and the others share the rest, so a
    level EM could not estimate still has a sensible, conservative value.

    Args:
        comparison: a comparison dict.
        agree: starting m of the first non-null level.

    Returns:
        The comparison with ``m_probability`` set where it was missing.
    """
    levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
    rest = (1.0 - agree) / max(len(levels) - 1, 1)
    for i, level in enumerate(levels):
        level.setdefault("m_probability", agree if i == 0 else rest)
    return comparison


# ---------------------------------------------------------------- comparisons


def _level(sql: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"sql_condition": sql, "label_for_charts": label, **extra}


def _null_level(*cols: str) -> dict[str, Any]:
    cond = " OR ".join(f"{c}_l IS NULL OR {c}_r IS NULL" for c in cols)
    return _level(cond, "null", is_null_level=True)


def _tf(settings: ResolveSettings, col: str) -> dict[str, Any]:
    return {"tf_adjustment_column": col, "tf_adjustment_weight": 1.0} if settings.term_frequency_adjustments else {}


def _fuzzy_levels(col: str, settings: ResolveSettings) -> list[dict[str, Any]]:
    """Similarity levels for a string column, strongest first."""
    if settings.string_similarity == "jaro_winkler":
        return [_level(f"jaro_winkler({col}_l, {col}_r) >= {t}", f"Jaro-Winkler >= {t}")
                for t in settings.name_similarity]
    return [_level(f"levenshtein({col}_l, {col}_r) <= {d}", f"Levenshtein <= {d}")
            for d in settings.name_edit_distance]


def _address_fuzzy(settings: ResolveSettings) -> str:
    if settings.string_similarity == "jaro_winkler":
        return f"jaro_winkler(address_key_l, address_key_r) >= {settings.address_similarity}"
    return f"levenshtein(address_key_l, address_key_r) <= {settings.address_edit_distance}"


def first_name_comparison(settings: ResolveSettings) -> dict[str, Any]:
    """First name: exact, nickname-compatible, misspelt, different."""
    return {
        "output_column_name": "first_name",
        "comparison_description": "first name",
        "comparison_levels": [
            _null_level("first_name"),
            _level("first_name_l = first_name_r", "exact", **_tf(settings, "first_name")),
            _level("arrays_overlap(first_name_aliases_l, first_name_aliases_r)", "nickname"),
            *_fuzzy_levels("first_name", settings),
            _level("ELSE", "different"),
        ],
    }


def last_name_comparison(settings: ResolveSettings) -> dict[str, Any]:
    """Last name: exact, misspelt, different."""
    return {
        "output_column_name": "last_name",
        "comparison_description": "last name",
        "comparison_levels": [
            _null_level("last_name"),
            _level("last_name_l = last_name_r", "exact", **_tf(settings, "last_name")),
            *_fuzzy_levels("last_name", settings),
            _level("ELSE", "different"),
        ],
    }


def middle_name_comparison(settings: ResolveSettings) -> dict[str, Any]:
    """Middle name: exact, initial against a full name, misspelt, different (null is neutral)."""
    initial = ("substr(middle_name_l, 1, 1) = substr(middle_name_r, 1, 1)"
               " AND (length(middle_name_l) = 1 OR length(middle_name_r) = 1)")
    return {
        "output_column_name": "middle_name",
        "comparison_description": "middle name",
        "comparison_levels": [
            _null_level("middle_name"),
            _level("middle_name_l = middle_name_r", "exact", **_tf(settings, "middle_name")),
            _level(initial, "initial"),
            *_fuzzy_levels("middle_name", settings)[:1],
            _level("ELSE", "different"),
        ],
    }


def suffix_comparison() -> dict[str, Any]:
    """Generational suffix: same (or both none), one missing, different (JR vs SR)."""
    return {
        "output_column_name": "name_suffix",
        "comparison_description": "name suffix",
        "comparison_levels": [
            _level("coalesce(name_suffix_l, '') = coalesce(name_suffix_r, '')", "same or both none"),
            _level("name_suffix_l IS NULL OR name_suffix_r IS NULL", "one missing"),
            _level("ELSE", "different"),
        ],
    }


def birth_comparison(settings: ResolveSettings, has_birth_date: bool) -> dict[str, Any]:
    """Birth date / year: same date, same year, within the tolerance, different."""
    tol = settings.birth_year_tolerance
    levels = [_null_level("birth_year")]
    if has_birth_date:
        levels.append(_level("birth_date_l = birth_date_r", "same date"))
        levels.append(_level("birth_year_l = birth_year_r AND (birth_date_l IS NULL OR birth_date_r IS NULL)",
                             "same year"))
    else:
        levels.append(_level("birth_year_l = birth_year_r", "same year"))
    levels.append(_level(f"abs(birth_year_l - birth_year_r) <= {tol}", f"years within {tol}"))
    levels.append(_level("ELSE", "different"))
    return {"output_column_name": "birth", "comparison_description": "birth date or year",
            "comparison_levels": levels}


def gender_comparison() -> dict[str, Any]:
    """Gender: same, different (unknown is neutral)."""
    return {
        "output_column_name": "gender",
        "comparison_description": "gender",
        "comparison_levels": [
            _null_level("gender"),
            _level("gender_l = gender_r", "same"),
            _level("ELSE", "different"),
        ],
    }


def location_comparison(settings: ResolveSettings, with_unit: bool, with_city: bool,
                        u_same_address: float | None = None) -> dict[str, Any]:
    """Residence: same address (and unit), misspelt address in the same ZIP, same ZIP, same city, elsewhere.

    Address and ZIP are one comparison because they are not independent (the
    same street line almost always has the same ZIP).
    """
    same = "address_key_l = address_key_r AND zip5_l = zip5_r"
    fixed = {} if u_same_address is None else {"u_probability": u_same_address, "fix_u_probability": True}
    levels = [_level("(address_key_l IS NULL OR address_key_r IS NULL) AND (zip5_l IS NULL OR zip5_r IS NULL)",
                     "null", is_null_level=True)]
    if with_unit:
        levels.append(_level(f"{same} AND (unit_l <=> unit_r)", "same address and unit", **fixed))
        levels.append(_level(same, "same address, other unit"))
    else:
        levels.append(_level(same, "same address", **fixed))
    levels.append(_level(f"{_address_fuzzy(settings)} AND zip5_l = zip5_r", "similar address, same ZIP"))
    levels.append(_level("zip5_l = zip5_r", "same ZIP"))
    if with_city:
        levels.append(_level("city_l = city_r", "same city"))
    levels.append(_level("ELSE", "elsewhere"))
    return {"output_column_name": "location", "comparison_description": "residence",
            "comparison_levels": levels}


def exact_comparison(col: str, label: str, u_same: float | None = None) -> dict[str, Any]:
    """A key compared for equality (phone, e-mail); null is neutral.

    ``u_same`` (from :func:`key_collision_u`) fixes the u of the "same" level.
    """
    fixed = {} if u_same is None else {"u_probability": u_same, "fix_u_probability": True}
    return {
        "output_column_name": col,
        "comparison_description": label,
        "comparison_levels": [
            _null_level(col),
            _level(f"{col}_l = {col}_r", "same", **fixed),
            _level("ELSE", "different"),
        ],
    }


def present_columns(df: DataFrame, columns: Iterable[str]) -> set[str]:
    """The columns that hold at least one non-null value (one small aggregate).

    Args:
        df: the prepared input.
        columns: optional columns to check.

    Returns:
        The names of the columns with data.
    """
    from pyspark.sql import functions as F

    cols = list(columns)
    if not cols:
        return set()
    row = df.agg(*[F.count(F.col(c)).alias(c) for c in cols]).first()  # one row: a count per column
    return {c for c in cols if row is not None and row[c] > 0}
