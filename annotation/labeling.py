"""The labeling interface, generated from params so the label set has one source."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

CONFIG_PATH = Path(__file__).with_name("labeling_config.xml")


def labeling_config(labels: Sequence[str], interface: Mapping[str, Any]) -> str:
    """Label Studio XML: instructions, one ``Label`` per entity type, the text, guidelines.

    ``interface`` holds ``from_name``, ``to_name``, ``granularity``, ``instructions`` and,
    per label, ``colors`` and ``guidelines`` (shown as the label's hover hint and below
    the text).
    """
    missing = [lab for lab in labels
               if lab not in interface["colors"] or lab not in interface["guidelines"]]
    if missing:
        raise ValueError(f"annotation.interface: no color or guideline for labels {missing}")
    view = ET.Element("View")
    ET.SubElement(view, "Header", value=interface["instructions"].strip(), size="5")
    tags = ET.SubElement(view, "Labels", name=interface["from_name"],
                         toName=interface["to_name"])
    for lab in labels:
        ET.SubElement(tags, "Label", value=lab, background=interface["colors"][lab],
                      hint=interface["guidelines"][lab].strip())
    ET.SubElement(view, "Text", name=interface["to_name"], value="$text",
                  granularity=interface["granularity"])
    guide = ET.SubElement(view, "View", style="margin-top: 1em; opacity: 0.8")
    for lab in labels:
        ET.SubElement(guide, "Header", value=f"{lab}: {interface['guidelines'][lab].strip()}",
                      size="6")
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def instructions_html(labels: Sequence[str], interface: Mapping[str, Any]) -> str:
    """The project's expert instructions (shown before labeling): the same guidelines."""
    items = "".join(f"<li><b>{escape(lab)}</b>: {escape(interface['guidelines'][lab].strip())}"
                    "</li>" for lab in labels)
    return f"<p>{escape(interface['instructions'].strip())}</p><ul>{items}</ul>"
