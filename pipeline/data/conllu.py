"""CoNLL-U reader: one Sentence per sentence, tagged with its UPOS, XPOS or FEATS column,
optionally with further columns kept as ``aux`` for multi-task taggers.

Multi-word token ranges (``1-2``) and empty nodes (``1.1``) are skipped: taggers predict one
tag per syntactic word, which is what the integer-id lines hold.
"""

from __future__ import annotations

import gzip
import lzma
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pipeline.data.sentences import Sentence, check_token, claim_id, nonempty
from pipeline.io import BadInput

COLUMNS = {"upos": 3, "xpos": 4, "feats": 5}
# The 17 Universal POS tags (universaldependencies.org/u/pos): the only values of UPOS.
UPOS = frozenset("ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM "
                 "VERB X".split())


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open plain, ``.xz`` or ``.gz`` files as UTF-8 text, so corpora can stay compressed."""
    name = str(path)
    if name.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8")
    if name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number, line) pairs; a corrupt archive or a non-UTF-8 byte is a BadInput
    naming the file and the line where reading stopped."""
    lineno = 0
    try:
        with open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                yield lineno, line.rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}:{lineno + 1}: not UTF-8 text ({e.reason} at byte "
                       f"{e.start} of the line's chunk)") from e
    except (lzma.LZMAError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise BadInput(f"{path}:{lineno + 1}: corrupt or truncated compressed file ({e})") from e


def blocks(path: str | os.PathLike) -> Iterator[list[tuple[int, str]]]:
    """Yield the (line number, line) lists between blank lines; shared by the IOB2 reader."""
    block: list[tuple[int, str]] = []
    for lineno, line in lines(path):
        if line.strip():
            block.append((lineno, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


def comment(line: str) -> tuple[str, str]:
    """``# key = value`` -> (key, value); sent_id, text and newdoc id are the ones we keep."""
    key, _, value = line[1:].partition("=")
    return key.strip(), value.strip()


def read_conllu(path: str | os.PathLike, column: str = "upos", aux: tuple[str, ...] = ()
                ) -> list[Sentence]:
    """Read every sentence, tagged with ``column`` and with the ``aux`` columns beside it;
    bad lines raise BadInput naming file, line number and problem."""
    for name in (column, *aux):
        if name not in COLUMNS:
            raise ValueError(f"column must be one of {sorted(COLUMNS)}, got {name!r}")
    col = COLUMNS[column]
    sentences: list[Sentence] = []
    ids: dict[str, str] = {}
    doc = ""
    for block in blocks(path):
        sent_id, text, tokens, tags = "", "", [], []
        extra: dict[str, list[str]] = {name: [] for name in aux}
        first = block[0][0]
        for lineno, line in block:
            where = f"{path}:{lineno}"
            if line.startswith("#"):
                key, value = comment(line)
                sent_id = value if key == "sent_id" else sent_id
                text = value if key == "text" else text
                doc = value if key == "newdoc id" else doc
                continue
            fields = line.split("\t")
            if len(fields) != 10:
                raise BadInput(f"{where}: expected 10 tab-separated columns, got {len(fields)}")
            word_id = fields[0]
            if "-" in word_id or "." in word_id:
                continue  # multi-word token range or empty node
            if not word_id.isdigit() or int(word_id) != len(tokens) + 1:
                raise BadInput(
                    f"{where}: word id {word_id!r} does not follow {len(tokens)} "
                    "(ids must run 1, 2, 3, ...)"
                )
            for name in (column, *aux):
                value = fields[COLUMNS[name]]
                if not value or " " in value:
                    raise BadInput(f"{where}: bad {name} tag {value!r}")
                if name == "upos" and value not in UPOS:
                    raise BadInput(f"{where}: upos tag {value!r} is not one of the 17 "
                                   "Universal POS tags")
            check_token(where, fields[1])
            tokens.append(fields[1])
            tags.append(fields[col])
            for name in aux:
                extra[name].append(fields[COLUMNS[name]])
        if not tokens:
            raise BadInput(f"{path}:{first}: sentence with no words")
        sid = sent_id or f"{Path(path).name}:{len(sentences)}"
        claim_id(ids, sid, f"{path}:{first}")
        meta = {k: v for k, v in (("text", text), ("doc", doc)) if v}
        sentences.append(Sentence(id=sid, tokens=tokens, tags=tags, meta=meta, aux=extra))
    return nonempty(path, sentences)
