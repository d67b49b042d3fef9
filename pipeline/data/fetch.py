"""Fetch a published data file once into data/raw/, verified by its sha256.

Any file in a dataset or corpus entry may be ``{url:, sha256:}`` instead of a path.
``file://`` URLs work too (that is how the tests exercise this code offline).
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from pipeline.io import BadInput, atomic_path, sha256_file


class FetchError(BadInput):
    """A download that failed or did not match its sha256; the message names the URL."""


def fetch(url: str, sha256: str, dest: str | Path, timeout_s: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there."""
    dest = Path(dest)
    if dest.exists() and sha256_file(dest) == sha256:
        return dest
    digest = hashlib.sha256()
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as f:
                while block := response.read(1 << 20):
                    digest.update(block)
                    f.write(block)
            if digest.hexdigest() != sha256:
                raise FetchError(
                    f"{url}: sha256 mismatch: expected {sha256}, got {digest.hexdigest()}; "
                    f"{dest} left untouched"
                )
    except OSError as e:
        raise FetchError(f"{url}: download failed: {e}") from e
    return dest

