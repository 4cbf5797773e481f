"""Voter segments: the clustering inputs of active voters, segment profiles and their names, no I/O.

The segment job (:mod:`votelake.jobs.segment`) clusters the rows
:func:`segmentation_inputs` assembles (:mod:`votelake.models.segments` fits
the model); these functions describe what came out. A segment's profile is
its size, its mean scores and the inputs that set it apart from the whole
population, as standardized mean differences (the segment's mean minus the
population's, in population standard deviations). Its name follows from
rules on those differences, so a segment is named for what it is, whatever
number the clustering gave it.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from votelake.config import Settings

# The person keys every row carries (ids gold.voter_scores already publishes; no direct identifier).
KEYS = ("person_id", "state_voter_id", "state", "county_id")
# The published scores every profile reports, whether or not they are clustering inputs.
SCORES = ("turnout_prob", "support_prob", "persuasion_uplift")
# Inputs that measure how much a voter engages with the campaign (contacts and digital signals).
ENGAGEMENT = ("contact_attempts", "contacts_made", "digital_events", "digital_clicks")
# A segment is high or low on a measure when its mean is at least this many
# population standard deviations from the population's mean: half a standard
# deviation is a difference a field director can see in the segment's voters.
LEVEL_SD = 0.5
# Support this far below the population's is the opposition, however persuadable
# the model reads it; a segment only mildly below it is named for its persuasion.
OPPOSITION_SD = 1.0

def excluded_inputs(settings: Settings) -> tuple[str, ...]:
    """The protected attributes kept out of the segments (none with ``segments.include_protected``).

    Args:
        settings: the run configuration (``model.protected_attributes``, ``segments.include_protected``).

    Returns:
        Column names never used as clustering inputs.
    """
    return () if settings.segments.include_protected else settings.model.protected_attributes


def input_columns(features: Sequence[str], categorical: Sequence[str],
                  excluded: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The configured numeric and categorical inputs without the excluded (protected) ones.

    Args:
        features: ``segments.features``.
        categorical: ``segments.categorical``.
        excluded: :func:`excluded_inputs`.

    Returns:
        The numeric inputs and the categorical inputs, in their configured order.
    """
    return (tuple(c for c in features if c not in excluded), tuple(c for c in categorical if c not in excluded))


def segmentation_inputs(scores: DataFrame, features: DataFrame, numeric: Sequence[str],
                        categorical: Sequence[str] = ()) -> DataFrame:
    """One row per scored (active) voter: the person keys, the scores and every input.

    Each input is taken from ``gold.voter_scores`` when it is a column there,
    else from the voter's ``gold.voter_features`` row of the scores' as-of
    date. A voter without that row keeps its scores with the other inputs
    null (the model imputes them).

    Args:
        scores: ``gold.voter_scores`` (one row per active voter).
        features: ``gold.voter_features`` (the version the scores were computed from).
        numeric: numeric inputs (cast to double).
        categorical: text inputs (cast to string; :func:`with_indicators` turns them into numbers).

    Returns:
        :data:`KEYS`, :data:`SCORES`, the other numeric inputs, then the categorical ones.

    Raises:
        ValueError: an input is a column of neither table.
    """
    missing = [c for c in (*numeric, *categorical) if c not in scores.columns and c not in features.columns]
    if missing:
        raise ValueError(f"segment inputs not in gold.voter_scores or gold.voter_features: {missing}")
    wanted = [*dict.fromkeys([*SCORES, *numeric]), *categorical]
    from_features = [c for c in wanted if c not in scores.columns]
    # The features the scores were computed from: the same as-of date, active voters only.
    voters = features.where(F.col("is_active")).select("person_id", "as_of_date", *from_features)
    joined = scores.join(voters, on=["person_id", "as_of_date"], how="left")
    return joined.select(*KEYS, *[F.col(c).cast("double").alias(c) for c in dict.fromkeys([*SCORES, *numeric])],
                         *[F.col(c).cast("string").alias(c) for c in categorical])


def indicator_names(levels: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], str]:
    """The 0/1 input column of each (categorical column, value): ``<column>__<value as a name>``.

    Args:
        levels: per categorical column, the values that get their own input.

    Returns:
        ``(column, value)`` to the input's column name (unique).
    """
    names: dict[tuple[str, str], str] = {}
    for column, values in levels.items():
        for value in values:
            base = f"{column}__{re.sub(r'[^a-z0-9]+', '_', str(value).lower()).strip('_') or 'blank'}"
            name, n = base, 2
            while name in names.values():  # two values spelt alike ("A B", "a_b") still get two inputs
                name, n = f"{base}_{n}", n + 1
            names[(column, value)] = name
    return names


def with_indicators(inputs: DataFrame, levels: Mapping[str, Sequence[str]]) -> DataFrame:
    """Categorical inputs as 0/1 columns, one per listed value (a null or unlisted value is 0 in each).

    Args:
        inputs: :func:`segmentation_inputs`' rows.
        levels: per categorical column, its values with an input of their own.

    Returns:
        The rows with the categorical columns replaced by :func:`indicator_names`' columns.
    """
    names = indicator_names(levels)
    kept = [c for c in inputs.columns if c not in levels]
    return inputs.select(*kept, *[F.when(F.col(column) == F.lit(value), 1.0).otherwise(0.0).alias(name)
                                  for (column, value), name in names.items()])


def relabelled(assigned: DataFrame, order: Mapping[int, int], cluster: str = "cluster") -> DataFrame:
    """Replace the clustering's arbitrary cluster numbers with segment ids.

    Args:
        assigned: rows with the clustering's ``cluster`` column.
        order: cluster number to segment id (the model numbers segments by size, 1 the largest).
        cluster: the cluster number's column.

    Returns:
        The rows with ``segment_id`` (int) in place of ``cluster``.
    """
    mapping = F.create_map(*[F.lit(x) for pair in sorted(order.items()) for x in pair])
    return assigned.select(*[c for c in assigned.columns if c != cluster],
                           mapping[F.col(cluster)].cast("int").alias("segment_id"))


def _level(diff: Column) -> Column:
    """``high``, ``low`` or ``mid``: a standardized difference against :data:`LEVEL_SD` (unknown is ``mid``)."""
    return F.when(diff >= LEVEL_SD, "high").when(diff <= -LEVEL_SD, "low").otherwise("mid")


def _qualified(label: str, *qualifiers: tuple[Column, str]) -> Column:
    """``label``, then ", high <measure>" or ", low <measure>" of the first qualifier whose level is not mid.

    Args:
        label: the segment's kind (base, opposition, ...).
        *qualifiers: (level, measure) pairs, the most telling first.

    Returns:
        The name.
    """
    name = F.lit(label)
    for level, measure in reversed(qualifiers):  # the first non-mid level wins
        name = F.when(level == "mid", name).otherwise(F.concat(F.lit(f"{label}, "), level, F.lit(f" {measure}")))
    return name


def segment_name(support: Column, turnout: Column, persuasion: Column, engagement: Column) -> Column:
    """A segment's name from its standardized differences from the population.

    The rules, first match: support high is the ``base`` (qualified by
    turnout, else engagement: the base at low turnout is the GOTV target);
    persuasion high is ``persuadable`` unless support is at least
    :data:`OPPOSITION_SD` low (qualified by engagement, how reachable it is,
    else turnout); support low is the ``opposition`` (qualified by turnout);
    turnout low is ``low-propensity unknown`` (qualified by engagement); the
    rest are ``undecided`` (qualified by turnout, else engagement). High and
    low are :data:`LEVEL_SD` or more from the population's mean.

    Args:
        support: the segment's support difference (sd).
        turnout: its turnout difference (sd).
        persuasion: its persuasion difference (sd).
        engagement: its mean engagement difference (sd).

    Returns:
        The name.
    """
    leaning = support > -OPPOSITION_SD
    support, turnout, persuasion, engagement = (_level(c) for c in (support, turnout, persuasion, engagement))
    by_turnout, by_engagement = (turnout, "turnout"), (engagement, "engagement")
    return (F.when(support == "high", _qualified("base", by_turnout, by_engagement))
            .when((persuasion == "high") & leaning, _qualified("persuadable", by_engagement, by_turnout))
            .when(support == "low", _qualified("opposition", by_turnout))
            .when(turnout == "low", _qualified("low-propensity unknown", by_engagement))
            .otherwise(_qualified("undecided", by_turnout, by_engagement)))


def profiles(assigned: DataFrame, inputs: Sequence[str], top: int = 3) -> DataFrame:
    """Each segment's size, mean scores, distinguishing inputs and name.

    Args:
        assigned: one row per voter with ``segment_id``, :data:`SCORES` and ``inputs`` (as
            the voter's values, before any imputation: a mean ignores the unknown).
        inputs: the clustering's inputs, among which the distinguishing ones are found.
        top: how many distinguishing inputs each profile names.

    Returns:
        ``segment_id, segment_name, voters, share, mean_turnout_prob,
        mean_support_prob, mean_persuasion_uplift, top_features``, one row per
        segment. ``top_features`` lists the inputs with the largest absolute
        standardized difference, e.g. ``digital_clicks +2.10 sd; age -0.62 sd``.
        Names are unique: a name two segments earn gets `` (2)``, `` (3)`` after
        it on the smaller ones.
    """
    measured = list(dict.fromkeys([*SCORES, *inputs]))
    # Positional aliases: an input's name may not be a valid identifier inside an expression.
    population = assigned.agg(F.count("*").alias("_population"),
                              *[F.avg(c).alias(f"_pm{i}") for i, c in enumerate(measured)],
                              *[F.stddev_pop(c).alias(f"_ps{i}") for i, c in enumerate(measured)])
    segments = assigned.groupBy("segment_id").agg(F.count("*").alias("voters"),
                                                  *[F.avg(c).alias(f"_m{i}") for i, c in enumerate(measured)])
    # One population row beside every segment.
    joined = segments.join(population, how="cross")
    diff = {c: (F.col(f"_m{i}") - F.col(f"_pm{i}")) / F.nullif(F.col(f"_ps{i}"), F.lit(0.0))
            for i, c in enumerate(measured)}
    # Inputs ordered by |difference|, largest first (sort_array orders structs by their first field).
    ranked = F.sort_array(F.filter(
        F.array(*[F.struct(F.abs(diff[c]).alias("size"), F.lit(c).alias("input"), diff[c].alias("diff"))
                  for c in inputs]),
        lambda s: s["size"].isNotNull()), asc=False)
    top_features = F.array_join(F.transform(F.slice(ranked, 1, top),
                                            lambda s: F.format_string("%s %+.2f sd", s["input"], s["diff"])), "; ")
    engaged = [diff[c] for c in ENGAGEMENT if c in inputs]
    known = F.filter(F.array(*engaged), lambda d: d.isNotNull()) if engaged else None
    # The mean of the known engagement differences; unknown (mid) without any.
    engagement = (F.aggregate(known, F.lit(0.0), lambda a, d: a + d) / F.nullif(F.size(known), F.lit(0))
                  if engaged else F.lit(None))
    named = joined.select(
        "segment_id",
        segment_name(diff["support_prob"], diff["turnout_prob"], diff["persuasion_uplift"],
                     engagement.cast("double")).alias("segment_name"),
        "voters", (F.col("voters") / F.col("_population")).alias("share"),
        *[F.col(f"_m{measured.index(c)}").alias(f"mean_{c}") for c in SCORES],
        F.when(F.length(top_features) > 0, top_features).alias("top_features"))
    # Same-named segments, largest first: the first keeps the name, the others are numbered.
    same = Window.partitionBy("segment_name").orderBy(F.col("voters").desc(), F.col("segment_id"))
    nth = F.row_number().over(same)
    return named.select(
        "segment_id",
        F.when(nth == 1, F.col("segment_name")).otherwise(F.format_string("%s (%d)", "segment_name", nth))
        .alias("segment_name"),
        "voters", "share", *[f"mean_{c}" for c in SCORES], "top_features")
