"""How often, and how patiently, a writer retries a Delta commit that lost a race.

A commit conflicts when another writer committed to the same table between the
moment this writer read its snapshot and the moment it tried to commit, and the
two changes cannot both stand as read (for example two overwrites). The writer
then rebuilds its commit against the newest snapshot and tries again, waiting a
little longer each time, up to ``attempts`` tries in all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a conflicting commit.

    Attributes:
        attempts: commit attempts in all, the first one included (1 = never retry).
        backoff_seconds: wait before the first retry; each later retry waits
            ``multiplier`` times longer.
        multiplier: growth of the wait from one retry to the next.
        jitter: fraction of each wait drawn at random (0 to 1), so writers that
            collided once do not retry in lockstep.
    """

    attempts: int = 3
    backoff_seconds: float = 0.5
    multiplier: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.backoff_seconds < 0 or self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(
                "backoff_seconds must be >= 0, multiplier >= 1 and jitter between 0 and 1; "
                f"got {self.backoff_seconds}, {self.multiplier}, {self.jitter}"
            )

    def delay(self, retry: int) -> float:
        """Return how long to wait before a retry.

        Args:
            retry: which retry is next (1 for the first retry, i.e. the second attempt).

        Returns:
            The wait in seconds.
        """
        base = self.backoff_seconds * self.multiplier ** (retry - 1)
        return base * (1 - self.jitter * random.random())


DEFAULT_RETRY_POLICY = RetryPolicy()
