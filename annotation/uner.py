"""Universal NER IOB2 files with their fifth column: the annotator of each entity token."""

from __future__ import annotations

import os

from pipeline.data.conllu import blocks
from pipeline.data.iob2 import read_iob2
from pipeline.data.sentences import Sentence


def read_uner(path: str | os.PathLike) -> list[Sentence]:
    """``read_iob2`` plus ``meta["annotators"]``: one name per token, ``-`` outside entities.

    Files without the column get no ``annotators`` key.
    """
    sentences = read_iob2(path)
    for sentence, block in zip(sentences, blocks(path), strict=True):
        rows = [line.split("\t") for _, line in block if not line.startswith("#")]
        if all(len(row) >= 5 for row in rows):
            sentence.meta["annotators"] = " ".join(row[4] or "-" for row in rows)
    return sentences
