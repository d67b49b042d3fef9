"""The unit every tagging reader produces and every tagging stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Sentence:
    """One sentence: a stable id (for hash splits), its tokens and one tag per token."""

    id: str
    tokens: list[str]
    tags: list[str]
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise ValueError(
                f"sentence {self.id!r}: {len(self.tokens)} tokens but {len(self.tags)} tags"
            )
