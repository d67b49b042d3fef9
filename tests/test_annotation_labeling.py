"""The committed labeling config is the one params.yaml generates."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from annotation.labeling import CONFIG_PATH, instructions_html, labeling_config
from pipeline.config import load


def test_committed_labeling_config_matches_params():
    params = load(None)["annotation"]
    generated = labeling_config(params["labels"], params["interface"])
    assert CONFIG_PATH.read_text(encoding="utf-8") == generated, (
        "annotation/labeling_config.xml is stale: run `python -m annotation labeling-config`")


def test_labels_come_from_params_only():
    params = load(None)["annotation"]
    root = ET.fromstring(CONFIG_PATH.read_text(encoding="utf-8"))
    assert [e.get("value") for e in root.iter("Label")] == params["labels"]
    assert root.find("Labels").get("name") == params["interface"]["from_name"]
    assert root.find("Text").get("name") == params["interface"]["to_name"]
    html = instructions_html(params["labels"], params["interface"])
    assert all(f"<b>{label}</b>" in html for label in params["labels"])
