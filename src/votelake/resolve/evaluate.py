"""Quality of a resolution against ground truth: pairwise for clusters, per record for links.

Pairwise precision and recall count pairs of items placed in the same cluster,
so they never need to match cluster ids between the prediction and the truth:

* true pairs: item pairs that share a truth cluster;
* predicted pairs: item pairs that share a predicted cluster;
* correct pairs: item pairs that share both.

Each count is a sum of ``n * (n - 1) / 2`` over groups, so nothing is exploded
into pairs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from votelake.resolve.inputs import registration_key


@dataclass(frozen=True)
class PairwiseScores:
    """Pairwise precision and recall of a clustering.

    Attributes:
        precision: correct pairs / predicted pairs (1.0 when nothing was predicted).
        recall: correct pairs / true pairs (1.0 when there are no true pairs).
        f1: harmonic mean of precision and recall.
        true_pairs: pairs in the same truth cluster.
        predicted_pairs: pairs in the same predicted cluster.
        correct_pairs: pairs in the same cluster in both.
        items: items evaluated.
    """

    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    items: int

    def as_dict(self) -> dict:
        """The scores as a plain dict (for JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class RecordScores:
    """Per-record quality of a linkage.

    Attributes:
        precision: correctly linked records / linked records.
        recall: correctly linked records / records whose true person exists.
        linked: records the linkage attached to a person.
        correct: linked records attached to their true person.
        linkable: records whose true person exists.
        records: records evaluated.
    """

    precision: float
    recall: float
    linked: int
    correct: int
    linkable: int
    records: int

    def as_dict(self) -> dict:
        """The scores as a plain dict (for JSON)."""
        return asdict(self)


def _other_column(df: DataFrame, key: str, what: str) -> str:
    others = [c for c in df.columns if c != key]
    if len(others) != 1:
        raise ValueError(f"{what} must have exactly the key {key!r} and one id column, got {df.columns}")
    return others[0]


def _pairs(n: Column) -> Column:
    return n * (n - F.lit(1)) / F.lit(2)


def _ratio(num: int, den: int) -> float:
    return 1.0 if den == 0 else num / den


def pairwise_precision_recall(predicted: DataFrame, truth: DataFrame, key: str = "registration_key") -> PairwiseScores:
    """Pairwise precision and recall of a clustering against the truth.

    Items in only one of the two inputs, or with a null cluster id, count as
    singletons on the side that lacks them (they form no pairs there).

    Args:
        predicted: ``key`` and one cluster-id column (e.g. ``person_id``).
        truth: ``key`` and one true cluster-id column.
        key: the item key column present in both.

    Returns:
        The :class:`PairwiseScores`.
    """
    p_col = _other_column(predicted, key, "predicted")
    t_col = _other_column(truth, key, "truth")
    p = predicted.select(F.col(key).alias("_k"), F.col(p_col).cast("string").alias("_p"))
    t = truth.select(F.col(key).alias("_k"), F.col(t_col).cast("string").alias("_t"))
    both = p.join(t, on="_k", how="full_outer").select(
        "_k",
        # A missing or null id is a singleton: give it an id nobody else has.
        F.coalesce(F.concat(F.lit("p:"), "_p"), F.concat(F.lit("k:"), "_k")).alias("_p"),
        F.coalesce(F.concat(F.lit("t:"), "_t"), F.concat(F.lit("k:"), "_k")).alias("_t"),
    )
    cells = both.groupBy("_p", "_t").agg(F.count("*").alias("n")).persist()
    try:
        row = cells.agg(
            F.sum(_pairs(F.col("n"))).alias("correct"),
            F.sum("n").alias("items"),
        ).first()  # one row: correct pairs and items
        # One value each: the pairs within predicted clusters, then within true ones.
        predicted_pairs = cells.groupBy("_p").agg(F.sum("n").alias("n")).agg(F.sum(_pairs(F.col("n")))).first()[0]
        true_pairs = cells.groupBy("_t").agg(F.sum("n").alias("n")).agg(F.sum(_pairs(F.col("n")))).first()[0]
    finally:
        cells.unpersist()
    correct = int(row["correct"] or 0)
    predicted_n = int(predicted_pairs or 0)
    true_n = int(true_pairs or 0)
    precision = _ratio(correct, predicted_n)
    recall = _ratio(correct, true_n)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return PairwiseScores(precision=precision, recall=recall, f1=f1, true_pairs=true_n,
                          predicted_pairs=predicted_n, correct_pairs=correct, items=int(row["items"] or 0))


def record_precision_recall(links: DataFrame, truth: DataFrame, key: str = "record_id") -> RecordScores:
    """Per-record precision and recall of a linkage.

    Both sides must use the same person-id space (map predicted person ids to
    true ones first, e.g. by the majority true person of their registrations).

    Args:
        links: ``key`` and the linked person id (null when unlinked).
        truth: ``key`` and the true person id (null when the record's person is
            not in the person table, e.g. an outsider).
        key: the record key column present in both.

    Returns:
        The :class:`RecordScores`; records missing from ``links`` count as unlinked.
    """
    l_col = _other_column(links, key, "links")
    t_col = _other_column(truth, key, "truth")
    lk = links.select(F.col(key).alias("_k"), F.col(l_col).cast("string").alias("_l"))
    tr = truth.select(F.col(key).alias("_k"), F.col(t_col).cast("string").alias("_t"))
    row = tr.join(lk, on="_k", how="left").agg(
        F.count("*").alias("records"),
        F.count("_l").alias("linked"),
        F.count("_t").alias("linkable"),
        F.sum((F.col("_l") == F.col("_t")).cast("int")).alias("correct"),
    ).first()  # one row: the record figures
    linked, correct, linkable = int(row["linked"]), int(row["correct"] or 0), int(row["linkable"])
    return RecordScores(precision=_ratio(correct, linked), recall=_ratio(correct, linkable), linked=linked,
                        correct=correct, linkable=linkable, records=int(row["records"]))


@dataclass(frozen=True)
class ResolutionQuality:
    """A build's identity resolution scored against a synthetic state's truth.

    Attributes:
        dedupe: duplicate registrations → persons (pairwise).
        contacts: contact records → persons (per record).
        digital: digital events → persons (per record).
    """

    dedupe: PairwiseScores
    contacts: RecordScores
    digital: RecordScores

    def as_dict(self) -> dict:
        """The scores as a plain dict (for JSON)."""
        return {"dedupe": self.dedupe.as_dict(), "contacts": self.contacts.as_dict(),
                "digital": self.digital.as_dict()}


def resolution_against_truth(person_ids: DataFrame, contacts: DataFrame, digital: DataFrame,
                             truth: dict[str, DataFrame], state: str) -> ResolutionQuality:
    """Score silver tables built from a synthetic state against its ground truth.

    Args:
        person_ids: ``silver.person_ids`` (``registration_key, person_id``).
        contacts: ``silver.contacts`` (``contact_id, person_id``).
        digital: ``silver.digital_events`` (``event_id, person_id``).
        truth: the generator's truth frames ``registrations`` (``county_id,
            voter_reg_num, person_id``), ``contacts`` (``contact_id, person_id``)
            and ``digital`` (``event_id, person_id``).
        state: the state code the registration keys carry.

    Returns:
        The :class:`ResolutionQuality`. A linked record counts as correct when
        its person's registrations belong (by majority, ties to the smallest
        id) to the record's true person.
    """
    true_regs = truth["registrations"].select(
        registration_key(state, F.col("county_id"), F.col("voter_reg_num")).alias("registration_key"),
        F.col("person_id").cast("string").alias("true_person"))
    dedupe = pairwise_precision_recall(person_ids.select("registration_key", "person_id"), true_regs)
    votes = (person_ids.join(true_regs, on="registration_key", how="inner")
             .groupBy("person_id", "true_person").agg(F.count("*").alias("_n")))
    majority = Window.partitionBy("person_id").orderBy(F.desc("_n"), "true_person")
    best = votes.select("person_id", F.col("true_person").alias("linked_person"),
                        F.row_number().over(majority).alias("_rank")).where(F.col("_rank") == 1).drop("_rank")

    def records(table: DataFrame, expected: DataFrame, key: str) -> RecordScores:
        links = table.select(F.col(key).alias("record_id"), "person_id").join(
            best, on="person_id", how="left").select("record_id", "linked_person")
        return record_precision_recall(links, expected.select(
            F.col(key).alias("record_id"), F.col("person_id").cast("string").alias("true_person")))

    return ResolutionQuality(dedupe=dedupe,
                             contacts=records(contacts, truth["contacts"], "contact_id"),
                             digital=records(digital, truth["digital"], "event_id"))
