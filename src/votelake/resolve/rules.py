"""Rule-based identity resolution: exact-match rules on standardized values, in plain Spark.

The fast, transparent resolver (``resolve.method: rules``): every rule is a set
of standardized fields that must all be equal (a first name also matches the
full names it is a nickname of). Registrations sharing a rule's values are the
same person; persons are the connected components across rules. Records
(contacts, digital events) link to a person by the first of :data:`LINK_KEYS`
(claimed state voter id, phone, e-mail, name and address, name and ZIP, ...)
whose value belongs to exactly one person. The Splink models
(``resolve.method: splink``) score fuzzy pairs instead; for records, the
build lets these rules link first and the model fill in the rest.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.resolve.nicknames import first_name_aliases

# Registration rules: all fields equal (``first_alias`` = a shared first-name alias).
DEDUPE_RULES: tuple[tuple[str, ...], ...] = (
    ("state_voter_id",),
    ("last_name", "first_alias", "birth_year", "zip5"),
    ("last_name", "first_alias", "birth_year", "phone"),
    ("last_name", "first_name", "middle_name", "birth_year", "gender"),
    # No rule forgives a mistyped first name: last name + birth year + phone
    # merged 591 spouses and twins sharing a landline in the real NC file, and
    # middle name + birth year + ZIP merged namesakes at 200,000 synthetic voters.
)
# Two registrations under different statewide voter ids that a name rule pairs
# stay apart when they disagree on any of these (both present and different):
# namesakes born the same year in one ZIP are common in a real state, and the
# state's own distinct ids are evidence that only agreement everywhere else outweighs.
CONFLICTS = ("gender", "middle_name", "birth_date")
MAX_ROUNDS = 20


def _alias_rows(registrations: DataFrame) -> DataFrame:
    return registrations.select("*", F.explode_outer(first_name_aliases(F.col("first_name"))).alias("first_alias"))


def rule_groups(registrations: DataFrame, rules: tuple[tuple[str, ...], ...] = DEDUPE_RULES) -> DataFrame:
    """Registration → group memberships: one row per registration per rule it can take part in.

    Args:
        registrations: ``registration_key`` plus the rules' fields.
        rules: tuples of fields that must all be equal.

    Returns:
        ``registration_key, group`` (a group is a rule and its values).
    """
    keys = []
    for i, fields in enumerate(rules):
        complete = reduce(lambda a, b: a & b, [F.col(f).isNotNull() for f in fields])
        keys.append(F.when(complete, F.concat_ws("|", F.lit(f"r{i}"), *[F.col(f).cast("string") for f in fields])))
    # Every rule's key from one pass over the rows (a union would read them once per rule).
    return (_alias_rows(registrations).select("registration_key", F.explode(F.array(*keys)).alias("group"))
            .where(F.col("group").isNotNull()).distinct())


def _linking(memberships: DataFrame) -> DataFrame:
    """The memberships of groups with two or more keys."""
    # Most groups are one registration's own values and link nothing: dropping
    # them first makes every round a pass over the linked minority of a state.
    linking = memberships.groupBy("group").agg(F.count("*").alias("_n")).where(F.col("_n") > 1)
    return memberships.join(linking, on="group", how="left_semi")


def compatible_pairs(registrations: DataFrame, memberships: DataFrame) -> DataFrame:
    """Pairs of registrations that share a group and do not contradict each other.

    Args:
        registrations: ``registration_key``, ``state_voter_id`` and those of
            :data:`CONFLICTS` it has.
        memberships: :func:`rule_groups`.

    Returns:
        Edges ``src, dst`` (the larger key to the smaller) of the pairs with
        the same voter id, or with different ids and no conflicting field.
    """
    linked = _linking(memberships)
    pairs = (linked.alias("a").join(linked.alias("b"), on="group", how="inner")
             .where(F.col("a.registration_key") < F.col("b.registration_key"))
             .select(F.col("b.registration_key").alias("src"), F.col("a.registration_key").alias("dst")).distinct())
    fields = [c for c in CONFLICTS if c in registrations.columns]
    attrs = registrations.select("registration_key", "state_voter_id", *fields)
    src = attrs.select(*[F.col(c).alias(f"s_{c}") for c in attrs.columns])
    dst = attrs.select(*[F.col(c).alias(f"d_{c}") for c in attrs.columns])
    joined = (pairs.join(src, F.col("src") == F.col("s_registration_key"), how="inner")
              .join(dst, F.col("dst") == F.col("d_registration_key"), how="inner"))
    same_id = F.coalesce(F.col("s_state_voter_id") == F.col("d_state_voter_id"), F.lit(False))
    conflict = reduce(lambda a, b: a | b, [_disagree(F.col(f"s_{c}"), F.col(f"d_{c}"), c) for c in fields],
                      F.lit(False))
    return joined.where(same_id | ~conflict).select("src", "dst")


def _disagree(a: Column, b: Column, field: str) -> Column:
    """Both present and different; a middle initial agrees with any middle name it begins."""
    if field == "middle_name":
        short = (F.length(a) == 1) | (F.length(b) == 1)
        differ = F.when(short, F.substring(a, 1, 1) != F.substring(b, 1, 1)).otherwise(a != b)
    else:
        differ = a != b
    return F.coalesce(differ, F.lit(False))


def components(edges: DataFrame, keys: DataFrame) -> DataFrame:
    """Label every key with the smallest key connected to it by ``edges`` (``src > dst``).

    The alternating large-star / small-star algorithm (Kiveris et al., 2014):
    each round rewires the key graph towards each component's smallest key
    until every component is a star around it. Rounds grow with the logarithm
    of a component's diameter; label propagation needs one round per link of
    the longest chain.

    Args:
        edges: ``src, dst`` links between keys.
        keys: every ``registration_key`` (keys on no edge are their own cluster).

    Returns:
        ``registration_key, cluster_id``.
    """
    edges = edges.localCheckpoint()  # cuts the input's lineage before the rounds
    for _ in range(MAX_ROUNDS):
        edges = _small_star(_large_star(edges)).localCheckpoint()  # read by the star test and the next round
        if _is_star_forest(edges):
            break
    else:
        raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
    labels = edges.select(F.col("src").alias("registration_key"), F.col("dst").alias("cluster_id"))
    return keys.select("registration_key").join(labels, on="registration_key", how="left").select(
        "registration_key", F.coalesce("cluster_id", "registration_key").alias("cluster_id"))


def _large_star(edges: DataFrame) -> DataFrame:
    """Connect every larger neighbour of a key to the smallest key of its neighbourhood."""
    both = edges.select(F.col("dst").alias("v"), F.col("src").alias("u")).unionByName(
        edges.select(F.col("src").alias("v"), F.col("dst").alias("u")))
    smallest = both.groupBy("v").agg(F.least(F.min("u"), F.col("v")).alias("m"))
    return (both.where(F.col("u") > F.col("v")).join(smallest, on="v", how="inner")
            .select(F.col("u").alias("src"), F.col("m").alias("dst")).distinct())


def _small_star(edges: DataFrame) -> DataFrame:
    """Connect a key and its smaller neighbours to the smallest of them."""
    smallest = edges.groupBy("src").agg(F.min("dst").alias("m"))
    neighbours = (edges.join(smallest, on="src", how="inner").where(F.col("dst") != F.col("m"))
                  .select(F.col("dst").alias("src"), F.col("m").alias("dst")))
    return neighbours.unionByName(smallest.select("src", F.col("m").alias("dst"))).distinct()


def _is_star_forest(edges: DataFrame) -> bool:
    """Every key has one edge, to a key with none: each component is a star on its smallest key."""
    centres_with_edges = edges.join(edges.select(F.col("src").alias("dst")).distinct(), on="dst", how="left_semi")
    forked = edges.groupBy("src").agg(F.count("*").alias("_n")).where(F.col("_n") > 1)
    return not centres_with_edges.limit(1).count() and not forked.limit(1).count()  # one row at most: ends the rounds


def dedupe_by_rules(registrations: DataFrame) -> DataFrame:
    """Cluster registrations into persons with :data:`DEDUPE_RULES`.

    Two registrations a rule pairs are merged unless their voter ids differ
    and they disagree on gender, middle name or birth date (:data:`CONFLICTS`).

    Args:
        registrations: the identity-resolution input (``registration_key``,
            ``state_voter_id``, names, ``birth_year``, ``birth_date``, ``gender``, ``zip5``, ``phone``).

    Returns:
        ``registration_key, cluster_id`` (the smallest key of the cluster).
    """
    return components(compatible_pairs(registrations, rule_groups(registrations)),
                      registrations.select("registration_key"))


# Record-linkage keys, in order of trust: a record links by the first key whose
# value (all its standardized fields present) belongs to exactly one person.
# The first-initial and no-last-name keys forgive a mistyped first or last name
# when the address agrees.
LINK_KEYS: dict[str, tuple[str, ...]] = {
    "state_voter_id": ("state_voter_id",),
    "phone": ("phone",),
    "email": ("email",),
    "name_address": ("last_name", "first_name", "address_key", "zip5"),
    "initial_address": ("last_name", "first_initial", "address_key", "zip5"),
    "first_name_address": ("first_name", "address_key", "zip5"),
    "name_zip": ("last_name", "first_name", "zip5"),
}


def _composite_key(fields: tuple[str, ...]) -> Column:
    """The fields joined with ``|``; null unless every field is present."""
    complete = reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in fields])
    return F.when(complete, F.concat_ws("|", *fields))


def _unique_owner(targets: DataFrame, key: Column, name: str) -> DataFrame:
    """Values of ``key`` that belong to exactly one person."""
    return (targets.select(key.alias(name), "person_id").where(F.col(name).isNotNull()).distinct()
            .groupBy(name).agg(F.count("*").alias("_n"), F.min("person_id").alias(f"_{name}_person"))
            .where(F.col("_n") == 1).drop("_n"))


def with_link_keys(df: DataFrame, *keep: str) -> DataFrame:
    """``keep`` and every :data:`LINK_KEYS` value of the rows (null unless all its fields are present).

    Args:
        df: rows with ``state_voter_id, first_name, last_name, address_key, zip5, phone, email``.
        keep: columns to carry through.

    Returns:
        ``keep`` followed by one column per key of :data:`LINK_KEYS`.
    """
    df = df.select("*", F.substring("first_name", 1, 1).alias("first_initial"))
    return df.select(*keep, *[_composite_key(fields).alias(name) for name, fields in LINK_KEYS.items()])


def claimed_keys(records: DataFrame, *keep: str) -> DataFrame:
    """:func:`with_link_keys` of records, their claimed state voter id standing for ``state_voter_id``."""
    return with_link_keys(records.drop("state_voter_id").withColumnRenamed("claimed_state_voter_id", "state_voter_id"),
                          *keep)


def link_by_person_keys(records: DataFrame, persons: DataFrame) -> DataFrame:
    """The rules' first pass: the first of :data:`LINK_KEYS` that belongs to exactly one person.

    It depends on each record and the persons only, so a refresh keeps it for
    records no changed person row shares a key with.

    Args:
        records: ``record_id, claimed_state_voter_id, first_name, last_name,
            address_key, zip5, phone, email``.
        persons: ``person_id, state_voter_id, first_name, last_name,
            address_key, zip5, phone, email`` (one row per registration).

    Returns:
        ``record_id, person_id, matched_by`` for every record (``none`` when no key matched).
    """
    person_rows = with_link_keys(persons, "person_id")
    keyed = claimed_keys(records, "record_id")
    for name in LINK_KEYS:
        keyed = keyed.join(_unique_owner(person_rows, F.col(name), name), on=name, how="left")
    rules = list(LINK_KEYS)
    return keyed.select(
        "record_id",
        F.coalesce(*[F.col(f"_{r}_person") for r in rules]).alias("person_id"),
        _rule_name(rules).alias("matched_by"),
    )


def link_by_learnt_keys(first: DataFrame) -> DataFrame:
    """The rules' second pass: phones and e-mails of records the first pass linked become person keys.

    Args:
        first: :func:`link_by_person_keys` with each record's ``phone`` and ``email``.

    Returns:
        ``record_id, person_id, match_probability, matched_by`` for every record.
    """
    linked = first.where(F.col("person_id").isNotNull())
    learnt = {
        "phone": _unique_owner(linked, F.col("phone"), "phone"),
        "email": _unique_owner(linked, F.col("email"), "email"),
    }
    second = first
    for name, owners in learnt.items():
        second = second.join(owners.withColumnRenamed(f"_{name}_person", f"_{name}_learnt"), on=name, how="left")
    return second.select(
        "record_id",
        F.coalesce("person_id", "_phone_learnt", "_email_learnt").alias("person_id"),
        F.when(F.coalesce("person_id", "_phone_learnt", "_email_learnt").isNotNull(), F.lit(1.0))
        .alias("match_probability"),
        F.when(F.col("person_id").isNotNull(), F.col("matched_by"))
        .when(F.col("_phone_learnt").isNotNull(), F.lit("phone_from_records"))
        .when(F.col("_email_learnt").isNotNull(), F.lit("email_from_records"))
        .otherwise(F.lit("none")).alias("matched_by"),
    )


def link_by_rules(records: DataFrame, persons: DataFrame) -> DataFrame:
    """Link records to persons by the first of :data:`LINK_KEYS` that belongs to exactly one person.

    Phones and e-mails carried by records linked in the first pass become
    person keys too (when they point at one person), so a web event keyed by an
    e-mail a canvasser recorded with a matched contact links to that person.

    Args:
        records: the records, as :func:`link_by_person_keys` takes them.
        persons: the person rows, as :func:`link_by_person_keys` takes them.

    Returns:
        ``record_id, person_id, match_probability, matched_by`` for every record
        (``person_id`` null and ``matched_by`` ``none`` when nothing matched).
    """
    first = link_by_person_keys(records, persons).join(
        records.select("record_id", "phone", "email"), on="record_id", how="inner",
    ).localCheckpoint()  # read three times by the second pass: the learnt keys and the records
    return link_by_learnt_keys(first)


def _rule_name(rules: list[str]) -> Column:
    out = F.lit("none")
    for rule in reversed(rules):
        out = F.when(F.col(f"_{rule}_person").isNotNull(), F.lit(rule)).otherwise(out)
    return out
