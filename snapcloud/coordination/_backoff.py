"""Capped exponential backoff with jitter: how long a retry waits (lease keeper, uploader)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with equal jitter; ``rng`` is injected for tests."""

    base_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): in [top/2, top]."""
        top = min(self.cap_s, self.base_s * 2.0 ** min(max(attempt, 0), 60))
        return top / 2 + self.rng.random() * top / 2
