"""The unit every tagging reader produces and every tagging stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


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
