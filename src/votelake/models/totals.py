"""Calibration of per-voter scores to known precinct totals.

Three parts:

* reading precinct election results in the MIT Election Data and Science Lab
  (MEDSL) precinct format (:func:`read_results`): two-party votes per
  precinct for one contest (:func:`precinct_results`), ballots cast (:func:`ballots_cast`), and the
  split of result precincts into those the voter file knows and the rest
  (:func:`match_precincts`);
* the logit shift voter-file vendors apply to make scores add up to known
  totals (:func:`logit_shift`, with :func:`share_targets` turning a vote
  share into the expected count it calibrates to);
* the precinct-level error of a prediction against results (:func:`precinct_error`);
* the whole method the score job applies (:func:`calibrate_to_results`, with
  :func:`calibration_report`): shifts solved on the voters as of the
  election, carried over to today's scores (:func:`apply_shifts`).

MEDSL quirks handled here:

* one row per candidate per voting mode; votes are summed over modes and
  candidates. Where a precinct also carries ``TOTAL`` rows for the contest,
  only those are used (summing them with the per-mode rows would count every
  vote twice);
* votes arrive as strings; unparseable values count as missing, not zero;
* early, absentee-by-mail and provisional votes are often reported on
  county-level pseudo-precincts (e.g. North Carolina's ``ONE STOP``,
  ``ABSENTEE BY MAIL``, ``PROVISIONAL``) rather than in the voter's precinct.
  They have no voters in the voter file: :func:`match_precincts` separates
  them so they can be reported and dropped. What is left is the precinct-located
  vote only (in such states mostly the Election Day vote), which can differ
  sharply from the whole electorate.

Calibration recipe (vote share)::

    results = precinct_results(raw, "US HOUSE", district="006")
    located, pseudo = match_precincts(results, scores, ["county_name", "precinct"])
    targets = share_targets(located, ["county_name", "precinct"], "two_party_share",
                            scores, "support_prob", weight_col="turnout_prob")
    calibrated, shifts = logit_shift(scores, ["county_name", "precinct"], "support_prob",
                                     targets, "target", weight_col="turnout_prob")

With turnout weights the turnout-weighted mean support of each precinct
equals its two-party share; without them (``weight_col=None``) the plain mean
over the scored voters does.

The score job's recipe (turnout to ballots cast, then support weighted by the
calibrated turnout, both solved as of the election and applied to today's
scores)::

    cal = calibrate_to_results(election_scores, current_scores, raw, office="US HOUSE")
    cal.current            # + turnout_prob_calibrated, support_prob_calibrated
    calibration_report(cal)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake import locations
from votelake.locations import Location

DEM = "DEMOCRAT"
REP = "REPUBLICAN"
BALLOTS_CAST = "BALLOTS CAST"
TOTAL_MODE = "TOTAL"
RESULT_KEYS = ("county_name", "precinct")
# Probabilities are clamped into [EPS, 1 - EPS] before the logit, and targets
# into [EPS * size, (1 - EPS) * size]: a score of exactly 0 or 1 has no logit,
# and a target of 0 or of the whole group needs an infinite shift.
EPS = 1e-6

# Internal column names, unlikely to clash with the caller's.
_Z, _W, _P = "__ls_z", "__ls_w", "__ls_p"
_CAP, _T, _D, _LO, _HI, _RES = "__ls_cap", "__ls_t", "__ls_delta", "__ls_lo", "__ls_hi", "__ls_res"
_S, _DS = "__ls_s", "__ls_ds"
# The one group of a shift of every score (shift_to_mean).
_ALL = "__ls_all"
# Suffix of a shifted probability column.
CALIBRATED = "_calibrated"


# --------------------------------------------------------------------------- results


def _votes(raw: DataFrame) -> Column:
    """Votes as a double: trimmed, thousands separators removed, unparseable -> null."""
    return F.regexp_replace(F.trim(F.col("votes").cast("string")), ",", "").try_cast("double")


def _is_total(raw: DataFrame) -> Column:
    """True on a ``TOTAL`` mode row (always False when the frame has no ``mode`` column)."""
    if "mode" not in raw.columns:
        return F.lit(False)
    return F.coalesce(F.upper(F.trim(F.col("mode"))) == TOTAL_MODE, F.lit(False))


def _mode_sum(is_total: Column, when: Column, votes: Column) -> tuple[Column, Column]:
    """Sums of ``votes`` where ``when`` holds, over TOTAL rows and over the other modes."""
    total = F.sum(F.when(when & is_total, votes))
    modes = F.sum(F.when(when & ~is_total, votes))
    return total, modes


def _pick(has_total: Column, total: Column, modes: Column) -> Column:
    """The TOTAL rows' sum where the precinct has any, else the per-mode sum; as a count."""
    value = F.when(has_total, F.coalesce(total, F.lit(0.0))).otherwise(F.coalesce(modes, F.lit(0.0)))
    return F.round(value).cast("long")


def _district_matches(district: str) -> Column:
    """``district`` equal to the argument as text, or as a number (``"006"`` matches ``"6"``)."""
    text = F.upper(F.trim(F.col("district").cast("string")))
    match = text == district.strip().upper()
    if district.strip().isdigit():
        match = match | (text.try_cast("int") == int(district.strip()))
    return F.coalesce(match, F.lit(False))


def precinct_results(raw: DataFrame, office: str, district: str | None = None) -> DataFrame:
    """Two-party votes and share per precinct for one contest of MEDSL precinct results.

    Votes are summed over voting modes and candidates (a party with two
    candidates on the ballot counts both). Where a precinct carries ``TOTAL``
    mode rows for the contest, only those are summed. Pseudo-precincts
    (absentee, early-voting, provisional) are kept: see :func:`match_precincts`.

    Args:
        raw: MEDSL rows with at least ``county_name``, ``precinct``, ``office``,
            ``district``, ``party_simplified`` (or ``party_detailed``) and
            ``votes`` (strings are fine); ``mode`` when present.
        office: the office, matched case-insensitively (e.g. ``"US HOUSE"``).
        district: the district, matched as text or as a number (``"006"`` = ``"6"``);
            None sums every district of the office (only sensible when the
            office has one district in the area, or for an average share).

    Returns:
        One row per ``county_name, precinct`` where the contest appears:
        ``dem_votes``, ``rep_votes`` (long) and ``two_party_share`` =
        dem / (dem + rep), null when both are 0.
    """
    party_col = "party_simplified" if "party_simplified" in raw.columns else "party_detailed"
    party = F.upper(F.trim(F.col(party_col)))
    rows = raw.where(F.upper(F.trim(F.col("office"))) == office.strip().upper())
    if district is not None:
        rows = rows.where(_district_matches(district))
    votes = _votes(raw)
    is_total = _is_total(raw)
    dem_total, dem_modes = _mode_sum(is_total, party == DEM, votes)
    rep_total, rep_modes = _mode_sum(is_total, party == REP, votes)
    counted = rows.groupBy(
        F.trim(F.col("county_name")).alias("county_name"), F.trim(F.col("precinct")).alias("precinct")
    ).agg(
        F.max(is_total.cast("int")).alias("has_total"),
        dem_total.alias("dem_total"), dem_modes.alias("dem_modes"),
        rep_total.alias("rep_total"), rep_modes.alias("rep_modes"),
    )
    has_total = F.col("has_total") == 1
    dem = _pick(has_total, F.col("dem_total"), F.col("dem_modes"))
    rep = _pick(has_total, F.col("rep_total"), F.col("rep_modes"))
    return counted.select(
        "county_name", "precinct", dem.alias("dem_votes"), rep.alias("rep_votes"),
    ).select(
        "county_name", "precinct", "dem_votes", "rep_votes",
        F.when(F.col("dem_votes") + F.col("rep_votes") > 0,
               F.col("dem_votes") / (F.col("dem_votes") + F.col("rep_votes"))).alias("two_party_share"),
    )


def ballots_cast(raw: DataFrame) -> DataFrame:
    """Ballots cast per precinct from the ``BALLOTS CAST`` rows of MEDSL results.

    The synthetic state writes such rows, and MEDSL uses that office name in
    some states; other states (North Carolina among them) have none, and the
    result is then empty.

    Args:
        raw: MEDSL rows (``county_name``, ``precinct``, ``office``, ``votes``; ``mode`` when present).

    Returns:
        ``county_name, precinct, ballots`` (long), summed over modes (or the
        ``TOTAL`` rows where a precinct has them).
    """
    rows = raw.where(F.upper(F.trim(F.col("office"))) == BALLOTS_CAST)
    is_total = _is_total(raw)
    total, modes = _mode_sum(is_total, F.lit(True), _votes(raw))
    counted = rows.groupBy(
        F.trim(F.col("county_name")).alias("county_name"), F.trim(F.col("precinct")).alias("precinct")
    ).agg(F.max(is_total.cast("int")).alias("has_total"), total.alias("total"), modes.alias("modes"))
    return counted.select(
        "county_name", "precinct",
        _pick(F.col("has_total") == 1, F.col("total"), F.col("modes")).alias("ballots"),
    )


def match_precincts(results: DataFrame, voters: DataFrame, keys: Sequence[str]) -> tuple[DataFrame, DataFrame]:
    """Split result precincts into those the voter file has and those it does not.

    The unmatched ones are typically county-level pseudo-precincts for early,
    absentee and provisional votes; report them before dropping them.

    Args:
        results: per-precinct results (e.g. from :func:`precinct_results`).
        voters: any frame with the ``keys`` columns (e.g. the scores).
        keys: the precinct key columns, present in both frames.

    Returns:
        ``(matched, unmatched)``: the rows of ``results`` whose keys appear in
        ``voters``, and the others, both with the columns of ``results``.
    """
    known = voters.select(*keys).dropna(how="any").distinct()
    matched = results.join(known, on=list(keys), how="left_semi").select(*results.columns)
    unmatched = results.join(known, on=list(keys), how="left_anti").select(*results.columns)
    return matched, unmatched


# --------------------------------------------------------------------------- calibration


def _clamped(p: Column, eps: float) -> Column:
    return F.least(F.greatest(p, F.lit(eps)), F.lit(1.0 - eps))


def _logit(p: Column) -> Column:
    return F.log(p / (F.lit(1.0) - p))


def _sigmoid(z: Column) -> Column:
    return F.lit(1.0) / (F.lit(1.0) + F.exp(-z))


def _expected(base: DataFrame, shifts: DataFrame, keys: list[str]) -> DataFrame:
    """One Newton evaluation: per group, Σ w·σ(z + δ) and its derivative Σ w·σ(1 - σ)."""
    s = _sigmoid(F.col(_Z) + F.col(_D))
    return (
        base.join(F.broadcast(shifts.select(*keys, _D)), on=keys, how="inner")
        .groupBy(*keys)
        .agg(F.sum(F.col(_W) * s).alias(_S), F.sum(F.col(_W) * s * (F.lit(1.0) - s)).alias(_DS))
    )


def share_targets(
    shares: DataFrame,
    keys: Sequence[str],
    share_col: str,
    scored: DataFrame,
    prob_col: str,
    weight_col: str | None = None,
    target_col: str = "target",
) -> DataFrame:
    """Expected-count targets for calibrating support to a vote share.

    The target of group g is share_g × Σ w_i over the group's scored voters
    (w = turnout probability when given, so the turnout-weighted mean support
    hits the share; otherwise w = 1, i.e. share_g × n_g). Voters with a null
    score are not counted, as in :func:`logit_shift`.

    Args:
        shares: one row per group with ``keys`` and ``share_col`` (e.g.
            ``two_party_share`` of :func:`precinct_results`).
        keys: the group columns, present in both frames.
        share_col: the share in [0, 1]; null means no target.
        scored: the per-voter scores.
        prob_col: the score column (rows where it is null are not counted).
        weight_col: the per-voter weight column (e.g. ``turnout_prob``); null weights count 0.

    Returns:
        ``keys, <target_col>`` for the groups present in both frames.
    """
    k = list(keys)
    w = F.coalesce(F.col(weight_col).cast("double"), F.lit(0.0)) if weight_col else F.lit(1.0)
    sizes = scored.where(F.col(prob_col).isNotNull()).groupBy(*k).agg(F.sum(w).alias("__size"))
    return shares.join(sizes, on=k, how="inner").select(
        *k, (F.col(share_col).cast("double") * F.col("__size")).alias(target_col)
    )


def logit_shift(
    scored: DataFrame,
    keys: list[str],
    prob_col: str,
    targets: DataFrame,
    target_col: str,
    iterations: int = 8,
    weight_col: str | None = None,
    eps: float = EPS,
    tol: float = 1e-9,
    max_shift: float | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Shift each group's scores on the logit scale so that they add up to a known total.

    For each group g, finds δ_g with Σ_i w_i · sigmoid(logit(p_i) + δ_g) = target_g
    (w_i = 1 without ``weight_col``): the expected count, e.g. of ballots or of
    DEM votes. A single shift per group keeps the order of the scores within the
    group. Solved by safeguarded Newton steps, all groups at once: each
    iteration is one aggregation of ``scored`` joined to the current (broadcast)
    shift table, which is then locally checkpointed so the query plan does not
    grow. A Newton step that leaves the bracket known to hold the root is
    replaced by bisection. Stops early when every group is within ``tol``.

    The projection of ``scored`` the iterations read (keys, logit, weight) is
    persisted for the duration of the call.

    Args:
        scored: per-voter rows with ``keys`` and ``prob_col``; rows with a null
            score are left out of the sums and stay null.
        keys: the group columns (e.g. ``["county_name", "precinct"]``).
        prob_col: the probability column; clamped into [eps, 1 - eps] before the logit.
        targets: one row per group with ``keys`` and ``target_col``. Groups
            absent from ``scored`` are ignored; groups of ``scored`` without a
            (non-null) target keep δ = 0 and their scores unchanged.
        target_col: the expected count; clamped into [eps·W_g, (1 - eps)·W_g],
            W_g = Σ w_i (= n_g unweighted): a target outside it cannot be hit.
        iterations: the most Newton steps (each one Spark aggregation).
        weight_col: optional non-negative per-voter weight (e.g. turnout
            probability, for share calibration); null weights count 0.
        eps: the clamp of probabilities and targets.
        tol: absolute tolerance on the expected count for stopping early.
        max_shift: the largest |δ| applied (None: no limit). A precinct of a
            handful of voters can need an extreme shift to hit its count; the
            limit keeps such noise from overriding the model, at the price of
            missing that target.

    Returns:
        ``(calibrated, shifts)``: ``scored`` with ``<prob_col>_calibrated``
        appended, and one row per group of ``scored``: ``keys, delta, n``
        (rows with a score), ``target`` (as given, null without one),
        ``predicted_before`` (Σ w·p, with p clamped) and ``predicted_after``
        (Σ w·calibrated).
    """
    k = list(keys)
    p = F.col(prob_col).cast("double")
    w = F.coalesce(F.col(weight_col).cast("double"), F.lit(0.0)) if weight_col else F.lit(1.0)
    base = scored.where(p.isNotNull()).select(*k, _logit(_clamped(p, eps)).alias(_Z), w.alias(_W))
    base = base.persist(StorageLevel.MEMORY_AND_DISK)
    # Every root lies inside ±bound: the clamped logits are within ±logit(1 - eps)
    # and the clamped target's mean logit is too.
    bound = 2.0 * math.log((1.0 - eps) / eps) + 1.0
    try:
        stats = base.groupBy(*k).agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(_W).alias(_CAP),
            F.sum(F.col(_W) * _sigmoid(F.col(_Z))).alias("predicted_before"),
        ).localCheckpoint()  # per group: read by the shifts and the table below
        given = targets.select(*k, F.col(target_col).cast("double").alias("target"))
        cap = F.col(_CAP)
        clamped_target = F.least(F.greatest(F.col("target"), F.lit(eps) * cap), F.lit(1.0 - eps) * cap)
        # Start from the shift that moves the group's mean logit-probability to the target's.
        start = _logit(F.col(_T) / cap) - _logit(F.col("predicted_before") / cap)
        shifts = (
            stats.join(given, on=k, how="inner")
            .where(F.col("target").isNotNull() & (cap > 0))
            .select(*k, _CAP, clamped_target.alias(_T), "predicted_before")
            .select(*k, _CAP, _T, F.least(F.greatest(start, F.lit(-bound)), F.lit(bound)).alias(_D),
                    F.lit(-bound).alias(_LO), F.lit(bound).alias(_HI))
            .localCheckpoint()  # per group: the rounds below re-read it
        )
        for _ in range(iterations):
            current = shifts.join(_expected(base, shifts, k), on=k, how="inner")
            resid = F.col(_S) - F.col(_T)
            lo = F.when(resid < 0, F.col(_D)).otherwise(F.col(_LO))
            hi = F.when(resid >= 0, F.col(_D)).otherwise(F.col(_HI))
            newton = F.col(_D) - resid / F.col(_DS)
            inside = (F.col(_DS) > 0) & (newton > lo) & (newton < hi)
            step = (F.when(F.abs(resid) <= tol, F.col(_D))
                    .when(inside, newton)
                    .otherwise((lo + hi) / 2))
            shifts = current.select(
                *k, _CAP, _T, step.alias(_D), lo.alias(_LO), hi.alias(_HI), F.abs(resid).alias(_RES)
            ).localCheckpoint()  # per group: cuts the lineage each round adds
            worst = shifts.agg(F.max(_RES)).first()[0]  # one value: the worst residual, to stop early
            if worst is None or worst <= tol:
                break
        if max_shift is not None:
            limited = F.least(F.greatest(F.col(_D), F.lit(-max_shift)), F.lit(max_shift))
            # Per group: read by both joins below.
            shifts = shifts.select(*[c for c in shifts.columns if c != _D], limited.alias(_D)).localCheckpoint()
        after = _expected(base, shifts, k).select(*k, F.col(_S).alias("predicted_after"))
        table = (
            stats.join(given, on=k, how="left")
            .join(shifts.select(*k, _D), on=k, how="left")
            .join(after, on=k, how="left")
            .select(
                *k,
                F.coalesce(F.col(_D), F.lit(0.0)).alias("delta"),
                "n",
                "target",
                "predicted_before",
                F.coalesce(F.col("predicted_after"), F.col("predicted_before")).alias("predicted_after"),
            )
            .localCheckpoint()  # per group: applied and returned
        )
    finally:
        base.unpersist()
    return apply_shifts(scored, k, prob_col, table, f"{prob_col}{CALIBRATED}", eps=eps), table


def shift_to_mean(scored: DataFrame, prob_col: str, mean: Column) -> tuple[DataFrame, dict]:
    """One logit shift of every score so that their mean is ``mean``: a turnout level set from outside.

    How high an election's turnout runs is not in any voter's history;
    campaigns set it from a projection. A single shift keeps every voter's
    rank and moves the level only.

    Args:
        scored: rows with ``prob_col`` (null scores are left out and stay null).
        prob_col: the probability column.
        mean: an aggregate Column over ``scored`` giving the mean to reach,
            e.g. ``F.lit(0.55)`` or ``F.avg("label")``.

    Returns:
        ``(shifted, figures)``: ``scored`` with ``<prob_col>_calibrated``
        appended, and ``delta`` (the logit shift), ``n``, ``mean_before`` and
        ``mean_after``.
    """
    keyed = scored.select("*", F.lit(1).alias(_ALL))
    target = keyed.groupBy(_ALL).agg((F.count(prob_col) * mean).alias("target"))
    shifted, table = logit_shift(keyed, [_ALL], prob_col, target, "target")
    row = table.first()  # one row: the single group
    figures = {"delta": float(row["delta"]), "n": int(row["n"]),
               "mean_before": row["predicted_before"] / row["n"], "mean_after": row["predicted_after"] / row["n"]}
    return shifted.drop(_ALL), figures


def apply_shifts(
    scored: DataFrame,
    keys: Sequence[str],
    prob_col: str,
    shifts: DataFrame,
    out_col: str,
    eps: float = EPS,
) -> DataFrame:
    """Shift scores on the logit scale by their group's δ from a shift table.

    Used to carry shifts solved on one set of scores (e.g. as of an election)
    over to other scores of the same groups (e.g. as of today).

    Args:
        scored: rows with ``keys`` and ``prob_col``.
        keys: the group columns.
        prob_col: the probability column; clamped into [eps, 1 - eps] before the logit.
        shifts: a shift table of :func:`logit_shift` (``keys``, ``delta``, ``target``);
            only groups with a (non-null) target are shifted.
        out_col: the name of the appended shifted probability.
        eps: the clamp of probabilities.

    Returns:
        ``scored`` with ``out_col`` = sigmoid(logit(p) + δ_g) in the shifted
        groups, and exactly p elsewhere (rows of other groups, with a null key
        or a null score).
    """
    k = list(keys)
    p = F.col(prob_col).cast("double")
    delta = F.col(_D)
    shifted = shifts.where(F.col("target").isNotNull()).select(*k, F.col("delta").alias(_D))
    out = F.when(p.isNull() | delta.isNull(), p).otherwise(_sigmoid(_logit(_clamped(p, eps)) + delta))
    return scored.join(F.broadcast(shifted), on=k, how="left").select(*scored.columns, out.alias(out_col))


# --------------------------------------------------------------------------- evaluation


def precinct_error(
    pred: DataFrame,
    actual: DataFrame,
    keys: Sequence[str],
    pred_col: str,
    actual_col: str,
    weight_col: str | None = None,
) -> dict:
    """Error of predicted precinct values (e.g. two-party share) against actual results.

    Args:
        pred: one row per precinct with ``keys`` and ``pred_col``.
        actual: one row per precinct with ``keys`` and ``actual_col``.
        keys: the precinct key columns.
        pred_col: the prediction.
        actual_col: the actual value.
        weight_col: column of ``actual`` weighting the weighted MAE; when None
            and ``actual`` has ``dem_votes`` and ``rep_votes`` (as from
            :func:`precinct_results`), their sum (the two-party votes).

    Returns:
        ``n`` (precincts with both values), ``mae``, ``median_ae``,
        ``weighted_mae`` (None without weights), ``bias`` (mean of pred -
        actual), ``corr`` (Pearson, None below 2 precincts), ``pred_only`` and
        ``actual_only`` (precincts on one side only).
    """
    k = list(keys)
    if weight_col is not None:
        weight = F.col(weight_col).cast("double")
    elif {"dem_votes", "rep_votes"} <= set(actual.columns):
        weight = (F.col("dem_votes") + F.col("rep_votes")).cast("double")
    else:
        weight = F.lit(None).cast("double")
    a = actual.select(*k, F.col(actual_col).cast("double").alias("__a"), weight.alias("__w"),
                      F.lit(True).alias("__in_a"))
    b = pred.select(*k, F.col(pred_col).cast("double").alias("__p"), F.lit(True).alias("__in_p"))
    both = F.col("__in_a") & F.col("__in_p") & F.col("__a").isNotNull() & F.col("__p").isNotNull()
    err = F.when(both, F.col("__p") - F.col("__a"))
    row = b.join(a, on=k, how="full").agg(
        F.count(err).alias("n"),
        F.avg(F.abs(err)).alias("mae"),
        F.median(F.abs(err)).alias("median_ae"),
        (F.sum(F.abs(err) * F.col("__w")) / F.sum(F.when(err.isNotNull(), F.col("__w")))).alias("weighted_mae"),
        F.avg(err).alias("bias"),
        F.corr(F.when(both, F.col("__p")), F.when(both, F.col("__a"))).alias("corr"),
        F.count(F.when(F.col("__in_p") & F.col("__in_a").isNull(), 1)).alias("pred_only"),
        F.count(F.when(F.col("__in_a") & F.col("__in_p").isNull(), 1)).alias("actual_only"),
    ).first()  # one row: the figures returned

    def _f(value):
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

    return {
        "n": int(row["n"]),
        "mae": _f(row["mae"]),
        "median_ae": _f(row["median_ae"]),
        "weighted_mae": _f(row["weighted_mae"]),
        "bias": _f(row["bias"]),
        "corr": _f(row["corr"]),
        "pred_only": int(row["pred_only"]),
        "actual_only": int(row["actual_only"]),
    }


# --------------------------------------------------------------------------- calibration to results

TURNOUT, SUPPORT = "turnout", "support"


@dataclass(frozen=True)
class Calibration:
    """The outcome of :func:`calibrate_to_results`.

    Attributes:
        election: the election-date rows, with ``<col>_calibrated`` appended
            for every model's probability column (equal to the model's where
            that model was not calibrated).
        current: the current rows, likewise.
        keys: the precinct key columns.
        columns: the probability column of each model kind present
            (``turnout``, ``support``).
        weight: the column of ``election`` that weighted the support
            calibration (the calibrated turnout), None without a turnout model.
        shifts: per calibrated kind, the :func:`logit_shift` table solved on
            the election-date rows (one row per voter-file precinct).
        results: per calibrated kind, every result row of the contest
            (``ballots`` for turnout, :func:`precinct_results` for support),
            pseudo-precincts included.
        matched: per calibrated kind, the result rows whose precinct has voters.
        unmatched: per calibrated kind, the other result rows.
        skipped: per model kind present but not calibrated, the reason.
    """

    election: DataFrame
    current: DataFrame
    keys: tuple[str, ...]
    columns: dict[str, str]
    weight: str | None
    shifts: dict[str, DataFrame] = field(default_factory=dict)
    results: dict[str, DataFrame] = field(default_factory=dict)
    matched: dict[str, DataFrame] = field(default_factory=dict)
    unmatched: dict[str, DataFrame] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _with_copy(frame: DataFrame, col: str, out_col: str) -> DataFrame:
    """``frame`` with ``out_col`` = ``col`` appended unless it is already there."""
    return frame if out_col in frame.columns else frame.select("*", F.col(col).cast("double").alias(out_col))


def calibrate_to_results(
    election: DataFrame,
    current: DataFrame,
    results: DataFrame,
    *,
    turnout_col: str | None = "turnout_prob",
    support_col: str | None = "support_prob",
    office: str = "US HOUSE",
    district: str | None = None,
    turnout: bool = True,
    support: bool = True,
    keys: Sequence[str] = RESULT_KEYS,
    iterations: int = 8,
    max_shift: float | None = None,
) -> Calibration:
    """Calibrate turnout and support scores to an election's precinct results, as voter-file vendors do.

    Turnout: the per-precinct logit shifts δ that make the election-date
    turnout probabilities add up to the precinct's ballots cast are solved on
    ``election`` (the voters eligible then, with features as of the election
    date), then applied to the current probabilities (logit(p) + δ).

    Support: the target of each precinct is its two-party DEM share × Σ w over
    its election-date voters, w = the calibrated election-date turnout
    probability (or the uncalibrated one when turnout was not calibrated; w = 1
    without a turnout model, i.e. share × voters). δ is solved on the
    election-date support probabilities with the weights w and applied to the
    current support probabilities.

    Precincts of the voter file without results keep δ = 0. Result precincts
    without voters (absentee, early-voting and provisional pseudo-precincts)
    cannot be placed: they are kept in ``unmatched`` for the report
    (:func:`calibration_report`), not silently dropped.

    Args:
        election: election-date rows with ``keys`` and the probability columns.
            When there are no features as of the election (no vote history),
            pass the current rows.
        current: current rows with ``keys`` and the same probability columns.
        results: MEDSL precinct results (raw rows, strings are fine).
        turnout_col: the turnout probability column; None or absent from
            either frame = no turnout model.
        support_col: the support probability column; None or absent = no support model.
        office: the contest the support is calibrated to.
        district: the contest's district (None: every district of the office).
        turnout: calibrate turnout (when the model and ``BALLOTS CAST`` rows exist).
        support: calibrate support (when the model and the contest's rows exist).
        keys: the precinct key columns, compared as given with the results'
            (trimmed) ``county_name`` and ``precinct``.
        iterations: the most Newton steps of each :func:`logit_shift`.
        max_shift: the largest |δ| applied (see :func:`logit_shift`).

    Returns:
        The :class:`Calibration`: both frames with ``<col>_calibrated`` for each
        model present, the shift tables, the results (matched and not) and the
        reasons a model was not calibrated.
    """
    k = list(keys)
    columns = {kind: col for kind, col in ((TURNOUT, turnout_col), (SUPPORT, support_col))
               if col is not None and col in election.columns and col in current.columns}
    election = election.localCheckpoint()  # per voter: read by each precinct match and shift below
    shifts: dict[str, DataFrame] = {}
    every: dict[str, DataFrame] = {}
    matched: dict[str, DataFrame] = {}
    unmatched: dict[str, DataFrame] = {}
    skipped: dict[str, str] = {}

    def shift(kind: str, found: DataFrame, target_col: str, weight_col: str | None) -> None:
        nonlocal election, current
        col = columns[kind]
        shifted, table = logit_shift(election, k, col, found, target_col, iterations=iterations,
                                     weight_col=weight_col, max_shift=max_shift)
        election = shifted.localCheckpoint()  # per voter: cuts the lineage before the next shift
        current = apply_shifts(current, k, col, table, f"{col}{CALIBRATED}")
        shifts[kind] = table

    def split(kind: str, rows: DataFrame) -> DataFrame:
        found, missing = match_precincts(rows, election, k)
        # Per result precinct (small): read by the shift and the report.
        every[kind], matched[kind], unmatched[kind] = rows, found.localCheckpoint(), missing.localCheckpoint()
        return matched[kind]

    weight = None
    if TURNOUT in columns:
        # Per result precinct (small): tested for rows, then matched and reported.
        ballots = ballots_cast(results).localCheckpoint() if turnout else None
        if ballots is None:
            skipped[TURNOUT] = "turnout calibration is off"
        elif ballots.isEmpty():  # stops at the first row
            skipped[TURNOUT] = f"the results have no {BALLOTS_CAST} rows"
        else:
            shift(TURNOUT, split(TURNOUT, ballots), "ballots", None)
        weight = f"{columns[TURNOUT]}{CALIBRATED}"
        election = _with_copy(election, columns[TURNOUT], weight)
        current = _with_copy(current, columns[TURNOUT], weight)

    if SUPPORT in columns:
        contest = office if district is None else f"{office} district {district}"
        # Per result precinct (small): tested for rows, then matched and reported.
        shares = precinct_results(results, office, district).localCheckpoint() if support else None
        if shares is None:
            skipped[SUPPORT] = "support calibration is off"
        elif shares.isEmpty():  # stops at the first row
            skipped[SUPPORT] = f"the results have no {contest} rows"
        else:
            found = split(SUPPORT, shares)
            targets = share_targets(found, k, "two_party_share", election, columns[SUPPORT], weight_col=weight)
            shift(SUPPORT, targets, "target", weight)
        out = f"{columns[SUPPORT]}{CALIBRATED}"
        election = _with_copy(election, columns[SUPPORT], out)
        current = _with_copy(current, columns[SUPPORT], out)

    return Calibration(election=election, current=current, keys=tuple(k), columns=columns, weight=weight,
                       shifts=shifts, results=every, matched=matched, unmatched=unmatched, skipped=skipped)


def precinct_totals(
    frame: DataFrame, keys: Sequence[str], turnout_col: str | None, support_col: str | None
) -> DataFrame:
    """Predicted precinct totals from per-voter probabilities.

    Args:
        frame: per-voter rows with ``keys`` and the probability columns.
        keys: the precinct key columns.
        turnout_col: the turnout probability (None: every voter counts 1 and
            ``ballots`` is null).
        support_col: the support probability (None: ``dem`` and ``share`` are null).

    Returns:
        ``keys, ballots`` (Σ turnout), ``dem`` (Σ turnout × support over
        voters with a support score) and ``share`` (dem / the matching Σ
        turnout: the turnout-weighted mean support, the predicted two-party
        DEM share).
    """
    k = list(keys)
    w = F.coalesce(F.col(turnout_col).cast("double"), F.lit(0.0)) if turnout_col else F.lit(1.0)
    s = F.col(support_col).cast("double") if support_col else F.lit(None).cast("double")
    return frame.groupBy(*k).agg(
        (F.sum(F.col(turnout_col)) if turnout_col else F.lit(None).cast("double")).alias("ballots"),
        F.sum(w * s).alias("dem"),
        F.sum(F.when(s.isNotNull(), w)).alias("__w"),
    ).select(*k, "ballots", "dem", F.when(F.col("__w") > 0, F.col("dem") / F.col("__w")).alias("share"))


def _round(value, digits: int = 4):
    return round(value, digits) if isinstance(value, float) else value


def _votes_share(part: DataFrame, whole: DataFrame, votes: Column) -> float | None:
    """Σ votes over ``part`` / Σ votes over ``whole``."""
    a = part.agg(F.sum(votes)).first()[0] or 0  # one value
    b = whole.agg(F.sum(votes)).first()[0] or 0  # one value
    return float(a) / float(b) if b else None


def calibration_report(cal: Calibration, max_names: int = 20) -> dict:
    """Figures on a calibration: matched and unmatched precincts, shifts, precinct error before and after.

    Errors (:func:`precinct_error`) are of the election-date predictions over
    the matched precincts: predicted ballots (Σ turnout) against ballots cast,
    and the predicted two-party DEM share (turnout-weighted mean support)
    against the contest's share, before (model probabilities) and after
    (calibrated ones). After calibration they are in-sample: zero up to the
    solver's tolerance, except where a target could not be reached.

    Args:
        cal: :func:`calibrate_to_results` output.
        max_names: how many unmatched result precincts to name.

    Returns:
        Per model kind present: ``status`` (calibrated, or the reason it was
        not), and when calibrated: result, matched and unmatched precinct
        counts, the unmatched precincts' names and share of the votes, the
        voter-file precincts (and voters) without results, the range of δ,
        the worst miss of a target, county-wide totals and the errors.
    """
    k = list(cal.keys)
    t_col, s_col = cal.columns.get(TURNOUT), cal.columns.get(SUPPORT)
    cal_t = f"{t_col}{CALIBRATED}" if t_col else None
    cal_s = f"{s_col}{CALIBRATED}" if s_col else None
    keyed = reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in k])
    # Per precinct: read by the errors of each model kind.
    before = precinct_totals(cal.election.where(keyed), k, t_col, s_col).localCheckpoint()
    after = precinct_totals(cal.election.where(keyed), k, cal_t, cal_s).localCheckpoint()  # per precinct, as above
    report: dict = {}
    for kind in cal.columns:
        if kind in cal.skipped:
            report[kind] = {"status": f"not calibrated: {cal.skipped[kind]}"}
            continue
        table, matched, unmatched = cal.shifts[kind], cal.matched[kind], cal.unmatched[kind]
        if kind == TURNOUT:
            votes, actual_col, pred_col, weight = F.col("ballots"), "ballots", "ballots", "ballots"
        else:
            votes = F.col("dem_votes") + F.col("rep_votes")
            actual_col, pred_col, weight = "two_party_share", "share", None
        names = [" / ".join(str(r[c]) for c in k)
                 for r in unmatched.select(*k).orderBy(*k).limit(max_names).collect()]  # at most max_names rows
        targeted = F.when(F.col("target").isNotNull(), F.col("delta"))
        stats = table.agg(
            F.min(targeted).alias("delta_min"), F.max(targeted).alias("delta_max"), F.avg(targeted).alias("delta_mean"),
            F.max(F.abs(F.col("predicted_after") - F.col("target"))).alias("worst_miss"),
            F.sum(F.when(F.col("target").isNotNull(), F.col("target"))).alias("target"),
            F.sum(F.when(F.col("target").isNotNull(), F.col("predicted_before"))).alias("predicted_before"),
            F.sum(F.when(F.col("target").isNotNull(), F.col("predicted_after"))).alias("predicted_after"),
        ).first()  # one row: the shift figures
        without = (table.where(keyed & F.col("target").isNull())
                   .agg(F.count("*").alias("g"), F.sum("n").alias("n")).first())  # one row: precincts without results
        errors = {
            label: {name: _round(value) for name, value in
                    precinct_error(frame, matched, k, pred_col, actual_col, weight_col=weight).items()}
            for label, frame in (("before", before), ("after", after))
        }
        report[kind] = {
            "status": "calibrated",
            "result_precincts": cal.results[kind].count(),
            "matched_precincts": matched.count(),  # per result precinct: small, checkpointed
            "unmatched_precincts": unmatched.count(),  # per result precinct: small, checkpointed
            "unmatched": names,
            "unmatched_vote_share": _round(_votes_share(unmatched, cal.results[kind], votes)),
            "voter_precincts_without_results": int(without["g"]),
            "voters_without_results": int(without["n"] or 0),
            "delta": {"min": _round(stats["delta_min"]), "max": _round(stats["delta_max"]),
                      "mean": _round(stats["delta_mean"])},  # over the precincts with results
            "worst_target_miss": stats["worst_miss"],
            "matched_totals": {"target": _round(stats["target"], 2),
                               "predicted_before": _round(stats["predicted_before"], 2),
                               "predicted_after": _round(stats["predicted_after"], 2)},
            ("ballots_error" if kind == TURNOUT else "share_error"): errors,
        }
    return report


def read_results(spark: SparkSession, path: Location) -> DataFrame:
    """Read MEDSL precinct results: one CSV file, or every ``*.csv`` file of a folder, as strings.

    Args:
        spark: the session.
        path: the file or folder (``calibration.results``; a local path or a URI).

    Returns:
        The rows, every column a string (:func:`precinct_results` parses them).

    Raises:
        FileNotFoundError: the path does not exist.
    """
    found = locations.kind(path)
    if found == "missing":
        raise FileNotFoundError(f"calibration.results: {path} does not exist")
    reader = spark.read.option("header", True)
    if found == "dir":
        reader = reader.option("pathGlobFilter", "*.csv").option("recursiveFileLookup", True)
    return reader.csv(str(path))
