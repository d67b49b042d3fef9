"""Train/dev/test assignment by a stable hash of each item's id.

An item's split depends only on its id, so adding annotations never moves old ones
between splits.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "dev", "test")


def unit_interval(key: str) -> float:
    """A uniform number in [0, 1) that depends only on ``key``."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:15], 16) / 16**15


def assign(item_id: str, dev: float, test: float) -> str:
    if not (0 <= dev and 0 <= test and dev + test < 1):
        raise ValueError(f"split fractions dev={dev}, test={test} must be >= 0 and sum below 1")
    u = unit_interval(item_id)
    if u < test:
        return "test"
    if u < test + dev:
        return "dev"
    return "train"
