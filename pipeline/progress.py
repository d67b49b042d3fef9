"""Progress bars for long steps: shown on a terminal, silent in CI logs and pipes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(items: Iterable[T], desc: str, total: int | None = None, leave: bool = False):
    """Wrap ``items`` in a tqdm bar only when a person is watching."""
    return tqdm(items, desc=desc, total=total, leave=leave, disable=not enabled(),
                dynamic_ncols=True)
