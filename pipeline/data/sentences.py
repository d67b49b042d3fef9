"""The unit every tagging reader produces and every tagging stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.io import BadInput


@dataclass
class Sentence:
    """One sentence: a stable id (for hash splits), its tokens and one tag per token.

    ``aux`` holds further per-token columns (CoNLL-U XPOS, FEATS) that a multi-task tagger
    predicts beside ``tags``; readers without such columns leave it empty.
    """

    id: str
    tokens: list[str]
    tags: list[str]
    meta: dict[str, str] = field(default_factory=dict)
    aux: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, column in {"tags": self.tags, **self.aux}.items():
            if len(self.tokens) != len(column):
                raise ValueError(
                    f"sentence {self.id!r}: {len(self.tokens)} tokens but {len(column)} {name}"
                )


def check_token(where: str, token: str) -> None:
    """A token is one word: an empty one, or whitespace inside, would shift the columns of
    predictions.conll and break the one-token-per-line files a reader expects."""
    if not token or any(c.isspace() for c in token):
        raise BadInput(f"{where}: token {token!r} is empty or has whitespace inside")


def claim_id(seen: dict[str, str], sentence_id: str, where: str) -> None:
    """Record where ``sentence_id`` was first seen; a repeat is a BadInput naming both
    places, since a sentence's split is drawn from its id."""
    if sentence_id in seen:
        raise BadInput(f"{where}: sentence id {sentence_id!r} was used already at "
                       f"{seen[sentence_id]}: ids must be unique")
    seen[sentence_id] = where


def nonempty(path: object, sentences: list[Sentence]) -> list[Sentence]:
    """``sentences``, unless the file held none: a corpus file without a sentence is an
    empty split later, where its name is no longer known."""
    if not sentences:
        raise BadInput(f"{path}: no sentences (an empty file?)")
    return sentences
