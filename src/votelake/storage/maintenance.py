"""Table maintenance and time travel by timestamp, for both backends:
compaction (optimize, z-order where supported), vacuum with a retention guard.
"""

from __future__ import annotations


class DeltaRsMaintenanceMixin:
    """Maintenance operations of :class:`~votelake.storage.delta_rs.DeltaRsStore`."""


class DeltaSparkMaintenanceMixin:
    """Maintenance operations of :class:`~votelake.storage.delta_spark.DeltaSparkStore`."""
