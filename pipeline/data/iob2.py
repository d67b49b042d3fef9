"""IOB2 entity files (Universal NER layout) in, conlleval-style predictions out.

Input lines are ``id<TAB>token<TAB>tag[<TAB>extra...]`` with ``# sent_id = ...`` and
``# text = ...`` comments; the extra UNER columns (misc and the annotator of each entity)
carry nothing a tagger learns from, so they are ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.data.conllu import blocks, comment
from pipeline.data.sentences import Sentence, check_token, claim_id, nonempty
from pipeline.io import BadInput, write_text

TAG = re.compile(r"O|[BI]-\S+")


def read_iob2(path: str | os.PathLike) -> list[Sentence]:
    """Read every sentence; bad lines raise ValueError naming file, line number and problem."""
    sentences: list[Sentence] = []
    ids: dict[str, str] = {}
    doc = ""
    for block in blocks(path):
        sent_id, text, tokens, tags = "", "", [], []
        for lineno, line in block:
            where = f"{path}:{lineno}"
            if line.startswith("#"):
                key, value = comment(line)
                sent_id = value if key == "sent_id" else sent_id
                text = value if key == "text" else text
                doc = value if key == "newdoc id" else doc
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                raise BadInput(f"{where}: expected id, token, tag columns, got {len(fields)}")
            if not fields[0].isdigit() or int(fields[0]) != len(tokens) + 1:
                raise BadInput(f"{where}: token id {fields[0]!r} does not follow {len(tokens)}")
            tag, previous = fields[2], tags[-1] if tags else "O"
            if not TAG.fullmatch(tag):
                raise BadInput(f"{where}: bad tag {tag!r} (expected O, B-X or I-X)")
            if tag.startswith("I-") and previous[2:] != tag[2:]:
                raise BadInput(f"{where}: {tag!r} follows {previous!r} (IOB2 needs B- first)")
            check_token(where, fields[1])
            tokens.append(fields[1])
            tags.append(tag)
        if not tokens:
            raise BadInput(f"{path}:{block[0][0]}: sentence with no tokens")
        sid = sent_id or f"{Path(path).name}:{len(sentences)}"
        claim_id(ids, sid, f"{path}:{block[0][0]}")
        meta = {k: v for k, v in (("text", text), ("doc", doc)) if v}
        sentences.append(Sentence(id=sid, tokens=tokens, tags=tags, meta=meta))
    return nonempty(path, sentences)


def write_conll(
    path: str | os.PathLike, sentences: Sequence[Sentence], predicted: Sequence[Sequence[str]]
) -> None:
    """Write ``token gold predicted`` lines (conlleval input), blank line between sentences.

    Whitespace inside a token becomes ``_`` so every line keeps exactly three fields.
    """
    if len(sentences) != len(predicted):
        raise BadInput(f"{len(sentences)} sentences but {len(predicted)} predictions")
    lines: list[str] = []
    for sentence, pred in zip(sentences, predicted, strict=True):
        if len(pred) != len(sentence.tokens):
            raise BadInput(
                f"sentence {sentence.id!r}: {len(sentence.tokens)} tokens but {len(pred)} "
                "predicted tags"
            )
        for token, gold, tag in zip(sentence.tokens, sentence.tags, pred, strict=True):
            lines.append(f"{'_'.join(token.split()) or '_'} {gold} {tag}")
        lines.append("")
    write_text(path, "\n".join(lines) + ("\n" if lines else ""))
