"""Fetch stage: a ``{url:, sha256:}`` data file -> data/raw/, verified."""

from __future__ import annotations

from pipeline import workflow
from pipeline.data.fetch import fetch
from pipeline.stages.common import load_config


def run(group: str, name: str, key: str) -> None:
    cfg = load_config()
    spec = workflow.file_spec(cfg, group, name, key)
    fetch(spec["url"], spec["sha256"], workflow.raw_file(group, name, key, spec))
