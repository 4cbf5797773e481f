"""Synthetic state generator: an NC-like voter file, vote history and campaign data.

Public API: :func:`generate` (writes everything under ``settings.out``),
:func:`build_frames` (the same outputs as DataFrames, no I/O),
:class:`SynthReport` and :data:`SNAPSHOT_DATE`.
"""

from votelake.synth.generate import (
    OUTPUTS,
    SynthReport,
    build_frames,
    build_outputs,
    build_registrations,
    generate,
)
from votelake.synth.reference import SNAPSHOT_DATE

__all__ = [
    "OUTPUTS", "SNAPSHOT_DATE", "SynthReport", "build_frames", "build_outputs",
    "build_registrations", "generate",
]
