"""Row-level changes: merge (upsert by primary key), delete by predicate and
predicate overwrite (``replaceWhere``), for both backends.

On delta-rs they run copy-on-write in Spark over only the affected files, and
one delta-rs commit removes the old files and adds the rewritten ones.
"""

from __future__ import annotations


class DeltaRsDmlMixin:
    """Row-level operations of :class:`~votelake.storage.delta_rs.DeltaRsStore`."""


class DeltaSparkDmlMixin:
    """Row-level operations of :class:`~votelake.storage.delta_spark.DeltaSparkStore`."""
