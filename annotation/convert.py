"""IOB2 sentences <-> Label Studio tasks (the JSON export's shape), both ways.

Offsets are Python ``str`` indices (Unicode code points), the unit Label Studio stores for
``<Text>`` spans. Each task keeps its token offsets in ``data.token_spans`` so that
BIO -> Label Studio -> BIO is exact; tasks made elsewhere fall back to ``tokenize``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotation.adjudicate import adjudicate
from pipeline.data.sentences import Sentence

# The UNER release carries no times: a fixed, obviously artificial stamp keeps snapshots
# byte-identical across runs.
EPOCH = "1970-01-01T00:00:00.000000Z"
TOKEN_RE = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")


class BadTask(ValueError):
    """A task that cannot become a sentence; the message names the task and the problem."""

    def __init__(self, task_id: Any, problem: str):
        super().__init__(f"task {task_id}: {problem}")
        self.task_id = task_id
        self.problem = problem


@dataclass
class ConversionReport:
    """What happened to every task: tasks_in == prepared + sum(skipped.values())."""

    tasks_in: int = 0
    prepared: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_tasks: list[dict[str, Any]] = field(default_factory=list)
    cancelled_annotations: int = 0
    snapped_spans: int = 0
    rejected_spans: int = 0
    adjudicated_by: Counter = field(default_factory=Counter)

    def skip(self, task_id: Any, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        self.skipped_tasks.append({"task_id": task_id, "reason": reason, "detail": detail})

    def balanced(self) -> bool:
        return self.tasks_in == self.prepared + sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks_in": self.tasks_in,
            "prepared": self.prepared,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_tasks": self.skipped_tasks,
            "cancelled_annotations": self.cancelled_annotations,
            "snapped_spans": self.snapped_spans,
            "rejected_spans": self.rejected_spans,
            "adjudicated_by": dict(sorted(self.adjudicated_by.items())),
        }


# ---------------------------------------------------------------- BIO -> Label Studio


def align_tokens(text: str, tokens: Sequence[str]) -> list[tuple[int, int]] | None:
    """Offsets of ``tokens`` in ``text`` in order, only whitespace between; None if not."""
    spans, pos = [], 0
    for tok in tokens:
        start = text.find(tok, pos)
        if start < 0 or text[pos:start].strip():
            return None
        spans.append((start, start + len(tok)))
        pos = start + len(tok)
    return spans if not text[pos:].strip() else None


def sentence_text(sentence: Sentence) -> tuple[str, list[tuple[int, int]]]:
    """The sentence's ``# text`` when its tokens align to it, else tokens joined by spaces."""
    text = sentence.meta.get("text")
    if text is not None:
        spans = align_tokens(text, sentence.tokens)
        if spans is not None:
            return text, spans
    text = " ".join(sentence.tokens)
    return text, align_tokens(text, sentence.tokens) or []


def bio_entities(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first token, last token + 1, type) per entity; a stray I- starts a new entity."""
    entities: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if prefix == "B" or (prefix == "I" and not (entities and entities[-1][1] == i
                                                    and entities[-1][2] == kind)):
            entities.append((i, i + 1, kind))
        elif prefix == "I":
            entities[-1] = (entities[-1][0], i + 1, kind)
    return entities


def region_id(*parts: Any) -> str:
    """A stable 10-character region id (Label Studio makes random ones of that length)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:10]


def entity_results(text: str, spans: Sequence[tuple[int, int]], tags: Sequence[str],
                   key: str, from_name: str, to_name: str, origin: str,
                   annotators: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Label Studio ``labels`` results for the entities in ``tags``."""
    results = []
    for first, last, kind in bio_entities(tags):
        start, end = spans[first][0], spans[last - 1][1]
        item: dict[str, Any] = {
            "id": region_id(key, start, end, kind),
            "from_name": from_name,
            "to_name": to_name,
            "type": "labels",
            "origin": origin,
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [kind]},
        }
        if annotators is not None:
            item["meta"] = {"annotator": annotators[first]}
        results.append(item)
    return results


def user_record(user_id: int, name: str) -> dict[str, Any]:
    """``completed_by`` as an export with ``annotations__completed_by.only_id=False`` has it."""
    return {"id": user_id, "email": f"{name}@uner.invalid", "first_name": name, "last_name": ""}


def sentences_to_tasks(sentences: Iterable[Sentence], from_name: str = "label",
                       to_name: str = "text", project: int = 1,
                       created_at: str = EPOCH) -> list[dict[str, Any]]:
    """Gold IOB2 sentences as a Label Studio JSON export: one ground-truth annotation each.

    The annotation is the released (adjudicated) gold for the sentence. Its ``completed_by``
    is the UNER annotator of its entities (user ids numbered by sorted annotator name, from
    2; id 1, "uner", stands for the release itself when a sentence has no entity or several
    annotators); each region also keeps its own annotator in ``meta.annotator``.
    """
    sentences = list(sentences)
    names = sorted({a for s in sentences for a in s.meta.get("annotators", "").split()} - {"-"})
    users = {"uner": 1} | {name: i for i, name in enumerate(names, start=2)}
    tasks = []
    for task_id, sent in enumerate(sentences, start=1):
        text, spans = sentence_text(sent)
        annotators = sent.meta["annotators"].split() if "annotators" in sent.meta else None
        result = entity_results(text, spans, sent.tags, sent.id, from_name, to_name,
                                "manual", annotators)
        who = {r["meta"]["annotator"] for r in result} if annotators else set()
        name = who.pop() if len(who) == 1 else "uner"
        annotation = {
            "id": task_id,
            "completed_by": user_record(users[name], name),
            "result": result,
            "was_cancelled": False,
            "ground_truth": True,
            "created_at": created_at,
            "updated_at": created_at,
            "draft_created_at": None,
            "lead_time": 0.0,
            "prediction": {},
            "result_count": len(result),
            "unique_id": region_id("annotation", sent.id),
            "import_id": None,
            "last_action": None,
            "bulk_created": False,
            "task": task_id,
            "project": project,
            "updated_by": users[name],
            "parent_prediction": None,
            "parent_annotation": None,
            "last_created_by": None,
        }
        tasks.append({
            "id": task_id,
            "annotations": [annotation],
            "drafts": [],
            "predictions": [],
            "data": {"text": text, "sent_id": sent.id,
                     "token_spans": [list(span) for span in spans]},
            "meta": {},
            "created_at": created_at,
            "updated_at": created_at,
            "allow_skip": True,
            "inner_id": task_id,
            "total_annotations": 1,
            "cancelled_annotations": 0,
            "total_predictions": 0,
            "comment_count": 0,
            "unresolved_comment_count": 0,
            "last_comment_updated_at": None,
            "project": project,
            "updated_by": users[name],
            "comment_authors": [],
        })
    return tasks


# ---------------------------------------------------------------- Label Studio -> BIO


def tokenize(text: str) -> list[tuple[int, int]]:
    """Fallback tokens for tasks without ``token_spans``: words, punctuation split off."""
    return [m.span() for m in TOKEN_RE.finditer(text)]


def task_tokens(task_id: Any, data: Mapping[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    """The task's text and token offsets, checked."""
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadTask(task_id, "empty or missing data.text")
    raw = data.get("token_spans")
    if raw is None:
        return text, tokenize(text)
    try:
        spans = [(int(s), int(e)) for s, e in raw]
    except (TypeError, ValueError) as exc:
        raise BadTask(task_id, f"data.token_spans is not a list of [start, end]: {exc}") from exc
    prev = 0
    for s, e in spans:
        if not prev <= s < e <= len(text):
            raise BadTask(task_id, f"data.token_spans has a bad token [{s}, {e}]")
        if any(c.isspace() for c in text[s:e]):
            raise BadTask(task_id, f"data.token_spans token [{s}, {e}] {text[s:e]!r} has "
                                   "whitespace inside")
        prev = e
    return text, spans


def annotation_spans(task_id: Any, annotation: Mapping[str, Any], text: str,
                     labels: Sequence[str]) -> list[tuple[int, int, str]]:
    """The (start, end, label) character spans of one annotation, validated."""
    if not isinstance(annotation.get("result"), list):
        raise BadTask(task_id, f"annotation {annotation.get('id')} has no result list")
    spans = []
    for item in annotation["result"]:
        if not isinstance(item, Mapping) or item.get("type") != "labels":
            continue
        where = f"annotation {annotation.get('id')} region {item.get('id')}"
        value = item.get("value")
        if not isinstance(value, Mapping):
            raise BadTask(task_id, f"{where}: no value")
        start, end, span_labels = value.get("start"), value.get("end"), value.get("labels")
        if not isinstance(start, int) or not isinstance(end, int):
            raise BadTask(task_id, f"{where}: start/end are not integers")
        if start < 0 or end > len(text) or start >= end:
            raise BadTask(task_id, f"{where}: offsets [{start}, {end}) outside the text "
                                   f"(length {len(text)})")
        if "text" in value and value["text"] != text[start:end]:
            raise BadTask(task_id, f"{where}: span text {value['text']!r} does not match "
                                   f"text[{start}:{end}] = {text[start:end]!r}")
        if not isinstance(span_labels, list) or len(span_labels) != 1:
            raise BadTask(task_id, f"{where}: needs exactly one label, has {span_labels!r}")
        if span_labels[0] not in labels:
            raise BadTask(task_id, f"{where}: unknown label {span_labels[0]!r}")
        spans.append((start, end, span_labels[0]))
    return sorted(spans)


def spans_to_tags(task_id: Any, spans: Sequence[tuple[int, int, str]],
                  tokens: Sequence[tuple[int, int]], span_policy: str,
                  report: ConversionReport) -> list[str]:
    """BIO tags for ``tokens``; an off-boundary span is snapped outwards or dropped."""
    tags = ["O"] * len(tokens)
    for start, end, label in spans:
        covered = [i for i, (s, e) in enumerate(tokens) if s < end and e > start]
        exact = bool(covered) and tokens[covered[0]][0] == start and tokens[covered[-1]][1] == end
        if not exact:
            if span_policy == "reject" or not covered:
                report.rejected_spans += 1
                continue
            if span_policy != "snap":
                raise ValueError(f"span_policy must be snap or reject, not {span_policy!r}")
            report.snapped_spans += 1
        if any(tags[i] != "O" for i in covered):
            raise BadTask(task_id, f"overlapping spans at [{start}, {end}) {label}")
        tags[covered[0]] = f"B-{label}"
        for i in covered[1:]:
            tags[i] = f"I-{label}"
    return tags


def annotator_of(annotation: Mapping[str, Any]) -> str:
    """The annotator's email when the export expands users, else ``user <id>``."""
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        return str(who.get("email") or f"user {who.get('id')}")
    return f"user {who}"


@dataclass
class ReadTask:
    """A task that passed every check: its text, token offsets and live annotations as tags."""

    task: Mapping[str, Any]
    text: str
    tokens: list[tuple[int, int]]
    candidates: list[dict[str, Any]]  # {"annotation", "annotator", "tags"}

    @property
    def sent_id(self) -> str:
        return str(self.task["data"].get("sent_id") or f"task-{self.task.get('id')}")


def read_task(task: Mapping[str, Any], labels: Sequence[str], policy: Mapping[str, Any],
              report: ConversionReport) -> ReadTask | None:
    """Check one task and convert its non-cancelled annotations; None when none is left."""
    task_id = task.get("id")
    data = task.get("data")
    if not isinstance(data, Mapping):
        raise BadTask(task_id, "no data object")
    text, tokens = task_tokens(task_id, data)
    annotations = task.get("annotations")
    if not isinstance(annotations, list):
        raise BadTask(task_id, "annotations is not a list")
    if not all(isinstance(a, Mapping) for a in annotations):
        raise BadTask(task_id, "an annotation is not an object")
    live = [a for a in annotations if not a.get("was_cancelled")]
    candidates = []
    for ann in live:
        spans = annotation_spans(task_id, ann, text, labels)
        tags = spans_to_tags(task_id, spans, tokens, policy["span_policy"], report)
        candidates.append({"annotation": ann, "annotator": annotator_of(ann), "tags": tags})
    report.cancelled_annotations += len(annotations) - len(live)
    if not live:
        report.skip(task_id, "all annotations cancelled" if annotations else "no annotations")
        return None
    return ReadTask(task, text, tokens, candidates)


def read_tasks(tasks: Iterable[Any], labels: Sequence[str], policy: Mapping[str, Any],
               report: ConversionReport) -> Iterator[ReadTask]:
    """Every usable task; bad ones raise ``BadTask`` or are skipped and counted, per policy.

    ``policy``: ``span_policy`` (snap|reject), ``on_bad_task`` (error|skip). A repeated task
    id, or a repeated sentence id (splits are drawn by it), is a bad task. Each yielded task
    counts as prepared.
    """
    seen: set[Any] = set()
    sentence_ids: dict[str, Any] = {}  # -> the task that has it
    for task in tasks:
        report.tasks_in += 1
        task_id = task.get("id") if isinstance(task, Mapping) else None
        try:
            if not isinstance(task, Mapping):
                raise BadTask(task_id, f"task is a {type(task).__name__}, not an object")
            if not isinstance(task_id, (int, str)):
                raise BadTask(task_id, "task has no id")
            if task_id in seen:
                raise BadTask(task_id, "duplicate task id")
            seen.add(task_id)
            read = read_task(task, labels, policy, report)
            if read is not None and read.sent_id in sentence_ids:
                raise BadTask(task_id, f"sentence id {read.sent_id!r} is task "
                                       f"{sentence_ids[read.sent_id]}'s already")
        except BadTask as exc:
            if policy["on_bad_task"] != "skip":
                raise
            report.skip(task_id, "bad task", exc.problem)
            continue
        if read is not None:
            sentence_ids[read.sent_id] = task_id
            report.prepared += 1
            yield read


def tasks_to_sentences(tasks: Iterable[Any], labels: Sequence[str],
                       policy: Mapping[str, Any]) -> tuple[list[Sentence], ConversionReport]:
    """A Label Studio JSON export -> one adjudicated gold sentence per usable task.

    ``policy`` as for ``read_tasks``, plus ``adjudication.annotator_priority``.
    """
    report = ConversionReport()
    sentences = []
    for read in read_tasks(tasks, labels, policy, report):
        chosen, rule = adjudicate(read.candidates, policy["adjudication"]["annotator_priority"])
        report.adjudicated_by[rule] += 1
        sentences.append(Sentence(
            id=read.sent_id,
            tokens=[read.text[s:e] for s, e in read.tokens],
            tags=list(chosen["tags"]),
            meta={"text": read.text, "task_id": str(read.task.get("id")),
                  "annotation_id": str(chosen["annotation"].get("id")),
                  "annotator": chosen["annotator"], "adjudication": rule},
        ))
    return sentences, report
