"""Settings of identity resolution (the ``resolve:`` section of the configuration).

Blocking rules are Spark SQL conditions over the two sides of a candidate pair,
``l.<column>`` and ``r.<column>``, exactly as Splink takes them. The columns a
rule may use are those of the prepared tables:

* dedupe: the :data:`~votelake.resolve.inputs.REGISTRATION_SCHEMA` columns plus
  ``first_name_aliases`` (the first name and the full names it is a nickname
  of, an array), ``last_name_soundex`` and ``middle_initial``;
* linkage: ``first_name``, ``first_name_aliases``, ``last_name``,
  ``last_name_soundex``, ``address_key``, ``zip5``, ``phone``, ``email``.

A saved model (Splink's JSON) carries its own comparisons and prediction
blocking rules; when a model is passed in, those are used and the settings
below only decide thresholds and the deterministic rules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from votelake.locations import LocationSetting


class _Strict(BaseModel):
    # Unknown keys fail fast; a typo must never be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DedupeSettings(_Strict):
    """Duplicate-registration resolution (Splink ``dedupe_only`` over registrations)."""

    # Pairs scored at or above this probability are joined into one person.
    match_threshold: float = Field(0.99, gt=0.0, lt=1.0)
    # Candidate pairs to score. A pair is scored once even if several rules admit it.
    blocking_rules: tuple[str, ...] = (
        "l.last_name = r.last_name and l.birth_year = r.birth_year",
        "l.phone = r.phone",
        "l.address_key = r.address_key and l.zip5 = r.zip5",
        "l.last_name_soundex = r.last_name_soundex and l.birth_year = r.birth_year"
        " and l.zip5 = r.zip5",
        "l.first_name = r.first_name and l.middle_name = r.middle_name"
        " and l.birth_year = r.birth_year",
    )
    # One EM session per rule; each estimates the m probabilities of the
    # comparisons its rule does not use.
    training_blocking_rules: tuple[str, ...] = (
        "l.last_name = r.last_name and l.birth_year = r.birth_year",
        "l.address_key = r.address_key and l.zip5 = r.zip5",
    )
    # Near-certain rules used to estimate the prior (probability that two random
    # registrations are the same person), with the share of all matches they find.
    prior_rules: tuple[str, ...] = (
        "l.state_voter_id = r.state_voter_id",
        "l.phone = r.phone and l.last_name = r.last_name and l.birth_year = r.birth_year",
        "l.address_key = r.address_key and l.zip5 = r.zip5 and l.last_name = r.last_name"
        " and l.birth_year = r.birth_year",
    )
    prior_recall: float = Field(0.9, gt=0.0, le=1.0)


class LinkSettings(_Strict):
    """Linking contact-history and digital records to resolved persons."""

    # A record links to the best-scoring person when that score reaches this.
    match_threshold: float = Field(0.95, gt=0.0, lt=1.0)
    # ... and when no other person scores within this margin of it.
    ambiguity_margin: float = Field(0.0, ge=0.0, lt=1.0)
    blocking_rules: tuple[str, ...] = (
        "l.last_name = r.last_name and l.zip5 = r.zip5",
        "l.address_key = r.address_key and l.zip5 = r.zip5",
        "l.first_name = r.first_name and l.address_key = r.address_key",
        "l.last_name_soundex = r.last_name_soundex and l.first_name = r.first_name"
        " and l.zip5 = r.zip5",
    )
    training_blocking_rules: tuple[str, ...] = (
        "l.last_name = r.last_name and l.zip5 = r.zip5",
        "l.address_key = r.address_key and l.zip5 = r.zip5",
    )
    prior_rules: tuple[str, ...] = (
        "l.first_name = r.first_name and l.last_name = r.last_name and l.address_key = r.address_key"
        " and l.zip5 = r.zip5",
    )
    prior_recall: float = Field(0.8, gt=0.0, le=1.0)
    # Deterministic links, tried before the probabilistic model, in this order:
    # the claimed state voter id, then a phone or e-mail that belongs to exactly
    # one person.
    use_state_voter_id: bool = True
    use_phone: bool = True
    use_email: bool = True
    # After the first pass, phones and e-mails carried by linked records become
    # person keys too (when they point at exactly one person), and unlinked
    # records are matched on them: a web event keyed by an e-mail that a
    # canvasser recorded with a matched contact.
    propagate_record_keys: bool = True


class ResolveSettings(_Strict):
    """Identity resolution: duplicate registrations, stable person ids, record linkage."""

    # "jaro_winkler" uses the similarity functions of the jar that ships with
    # Splink (added to the session with ADD JAR when not already registered);
    # "levenshtein" needs only Spark SQL built-ins (for sessions that cannot
    # load jars).
    string_similarity: Literal["jaro_winkler", "levenshtein"] = "jaro_winkler"
    # Jaro-Winkler similarity levels for names, strongest first.
    name_similarity: tuple[float, ...] = (0.92, 0.85)
    # Edit-distance levels for names in "levenshtein" mode, strongest first.
    name_edit_distance: tuple[int, ...] = (1, 2)
    # Street lines this similar (or within this edit distance) count as the same
    # street line misspelt.
    address_similarity: float = Field(0.9, gt=0.0, lt=1.0)
    address_edit_distance: int = Field(2, ge=1)
    # Birth years this far apart still count as a near match (typos).
    birth_year_tolerance: int = Field(1, ge=1)
    # Scale exact name matches by how common the name is (Splink term frequencies).
    term_frequency_adjustments: bool = True
    # Random pairs sampled to estimate the u probabilities.
    max_pairs_u: float = Field(5e6, ge=1e4)
    # EM iterations and convergence tolerance.
    em_max_iterations: int = Field(25, ge=1)
    em_convergence: float = Field(1e-4, gt=0.0)
    seed: int = 42
    # Partitions Splink repartitions large intermediate tables into; default
    # half of spark.sql.shuffle.partitions (Splink's own default).
    num_partitions: int | None = Field(None, ge=1)
    # Where Splink's intermediate tables go. None: local checkpoints on the
    # executors' local disks (nothing shared; an executor lost mid-run fails
    # the build, to be run again). A folder: Splink's Parquet in a per-run
    # subfolder, removed when the call returns; it must be storage every
    # executor can read (for clusters that lose executors).
    work_dir: LocationSetting | None = None
    dedupe: DedupeSettings = DedupeSettings()
    link: LinkSettings = LinkSettings()

    @model_validator(mode="after")
    def _levels_descend(self) -> "ResolveSettings":
        if list(self.name_similarity) != sorted(self.name_similarity, reverse=True) or not all(
            0.0 < s < 1.0 for s in self.name_similarity
        ):
            raise ValueError("name_similarity must be decreasing values in (0, 1)")
        if list(self.name_edit_distance) != sorted(self.name_edit_distance) or not all(
            d >= 1 for d in self.name_edit_distance
        ):
            raise ValueError("name_edit_distance must be increasing values >= 1")
        if not self.dedupe.blocking_rules or not self.link.blocking_rules:
            raise ValueError("dedupe.blocking_rules and link.blocking_rules must not be empty")
        return self
