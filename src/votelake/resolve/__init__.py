"""Identity resolution with Splink on Spark.

* :func:`dedupe_registrations`: which registrations are the same person
  (same state voter id, or a Splink ``dedupe_only`` model), as clusters; on
  a refresh, only the clusters a change reaches are resolved again;
* :func:`assign_person_ids`: person ids that stay stable across refreshes;
* :func:`link_records`: contact-history and digital records to persons
  (claimed id, unique phone / e-mail, then a Splink ``link_only`` model);
* :func:`pairwise_precision_recall`, :func:`record_precision_recall`: quality
  against ground truth.

Library code receives the SparkSession and never builds one. Settings live in
:class:`ResolveSettings` (the ``resolve:`` section of the configuration).
"""

from votelake.resolve.dedupe import DedupeResult, Previous, dedupe_registrations
from votelake.resolve.evaluate import (
    PairwiseScores,
    RecordScores,
    pairwise_precision_recall,
    record_precision_recall,
)
from votelake.resolve.ids import assign_person_ids, several_voter_ids
from votelake.resolve.inputs import (
    PERSON_SCHEMA,
    RECORD_SCHEMA,
    REGISTRATION_SCHEMA,
    contact_records,
    digital_records,
    ncvoter_registrations,
)
from votelake.resolve.link import LinkResult, link_records
from votelake.resolve.settings import DedupeSettings, LinkSettings, ResolveSettings

__all__ = [
    "DedupeResult",
    "DedupeSettings",
    "LinkResult",
    "LinkSettings",
    "PERSON_SCHEMA",
    "PairwiseScores",
    "Previous",
    "RECORD_SCHEMA",
    "REGISTRATION_SCHEMA",
    "RecordScores",
    "ResolveSettings",
    "assign_person_ids",
    "contact_records",
    "dedupe_registrations",
    "digital_records",
    "link_records",
    "ncvoter_registrations",
    "pairwise_precision_recall",
    "record_precision_recall",
    "several_voter_ids",
]
