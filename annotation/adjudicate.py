"""One gold annotation per task: ground truth first, then majority, then annotator priority."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any


def _id_key(candidate: Mapping[str, Any]) -> tuple[int, int, str]:
    ann_id = candidate["annotation"].get("id")
    return (0, ann_id, "") if isinstance(ann_id, int) else (1, 0, str(ann_id))


def priority_rank(annotator: str, annotator_priority: Sequence[str]) -> int | None:
    """Position of ``annotator`` in the priority list; an entry may be the full email,
    the part before ``@`` or the numeric user id."""
    names = {annotator, annotator.split("@")[0], annotator.removeprefix("user ")}
    for i, entry in enumerate(annotator_priority):
        if str(entry) in names:
            return i
    return None


def adjudicate(candidates: Sequence[Mapping[str, Any]],
               annotator_priority: Sequence[str]) -> tuple[Mapping[str, Any], str]:
    """Pick one candidate (dicts with ``annotation``, ``annotator``, ``tags``) and the rule used.

    Rules, in order: an annotation flagged ``ground_truth``; the tag sequence shared by
    most annotations, if no other ties with it; the annotator listed first in
    ``annotator_priority``; the lowest annotation id. The rule names the first that decided.
    """
    if not candidates:
        raise ValueError("nothing to adjudicate")
    ground_truth = [c for c in candidates if c["annotation"].get("ground_truth")]
    if ground_truth:
        pool, rule = ground_truth, "ground_truth"
    elif len(candidates) == 1:
        pool, rule = list(candidates), "single"
    else:
        votes = Counter(tuple(c["tags"]) for c in candidates)
        top = max(votes.values())
        winners = {tags for tags, n in votes.items() if n == top}
        pool = [c for c in candidates if tuple(c["tags"]) in winners]
        rule = "majority" if len(winners) == 1 else "first"
    if len({tuple(c["tags"]) for c in pool}) > 1:
        ranked = [(rank, c) for c in pool
                  if (rank := priority_rank(c["annotator"], annotator_priority)) is not None]
        if ranked:
            return min(ranked, key=lambda rc: (rc[0], _id_key(rc[1])))[1], "priority"
        rule = "first"
    return min(pool, key=_id_key), rule
