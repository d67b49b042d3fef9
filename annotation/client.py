"""label-studio-sdk calls with bounded retries and errors an annotator can act on.

The SDK's own retries are off (``max_retries=0``): every call goes through ``call``, which
retries transport errors (httpx errors are not wrapped in ``ApiError``) and 5xx answers
``server["retries"]`` times, then raises ``LabelStudioError``. Messages name the server
and the operation, never the API key.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from annotation.snapshot import write_snapshot
from pipeline.io import BadInput

T = TypeVar("T")
# Users and predictions in full: the annotator's email is what agreement and adjudication
# report, and pre-annotations should survive an export/import round trip.
SERIALIZATION = {"annotations__completed_by": {"only_id": False},
                 "predictions": {"only_id": False}, "drafts": {"only_id": True}}
VOLATILE_PREDICTION_KEYS = ("created_ago",)  # "3 minutes": changes with the clock


class LabelStudioError(BadInput):
    """A Label Studio call that failed for good; safe to print (the CLIs print one line)."""


def describe(exc: BaseException) -> str:
    """What went wrong, in words; ApiError bodies are kept short and key-free."""
    if isinstance(exc, ApiError):
        if exc.status_code == 401:
            return ("401 unauthorized: the API key was rejected (check LABEL_STUDIO_API_KEY; the "
                    "server must have LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)")
        body = exc.body if isinstance(exc.body, Mapping) else {}
        detail = body.get("validation_errors") or body.get("detail") or str(exc.body)[:200]
        return f"HTTP {exc.status_code}: {detail}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect (is the server running? see `python -m annotation serve`)"
    return f"{type(exc).__name__}: {exc}"


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, ApiError):
        return exc.status_code is not None and (exc.status_code >= 500 or exc.status_code == 429)
    return isinstance(exc, httpx.TransportError)


def retry_after(exc: BaseException) -> float | None:
    """The seconds a 429 answer's Retry-After header asks for (None: not a 429 or no header)."""
    if not isinstance(exc, ApiError) or exc.status_code != 429:
        return None
    value = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("retry-after", "")
    return float(value) if value.strip().isdigit() else None


def call(what: str, url: str, server: Mapping[str, Any], fn: Callable[..., T],
         *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried ``server["retries"]`` times on transport errors, 5xx
    and 429; a 429's Retry-After is waited for when it is within ``retry_after_max_s``."""
    attempts = int(server["retries"]) + 1
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except (ApiError, httpx.HTTPError) as exc:
            if not retryable(exc) or attempt == attempts:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise LabelStudioError(
                    f"Label Studio at {url}: {what} failed{tries}: {describe(exc)}") from None
            wait = retry_after(exc)
            if wait is not None and wait > float(server["retry_after_max_s"]):
                raise LabelStudioError(
                    f"Label Studio at {url}: {what}: the server asks to wait {wait:g} s "
                    f"(429 Retry-After), more than annotation.server.retry_after_max_s = "
                    f"{server['retry_after_max_s']}") from None
            time.sleep(wait if wait is not None
                       else float(server["backoff_s"]) * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def same(current: Any, wanted: Any) -> bool:
    """Equal as the server keeps it (it strips surrounding whitespace from text fields)."""
    if isinstance(current, str) and isinstance(wanted, str):
        return current.strip() == wanted.strip()
    return current == wanted


class Client:
    """One server, one API key; every method is one logical operation for the CLI."""

    def __init__(self, url: str, api_key: str, server: Mapping[str, Any]):
        if not url:
            raise LabelStudioError("no Label Studio URL: set LABEL_STUDIO_URL")
        if not api_key:
            raise LabelStudioError("no API key: set LABEL_STUDIO_API_KEY")
        self.url = url.rstrip("/")
        self.server = server
        self.sdk = LabelStudio(base_url=self.url, api_key=api_key,
                               timeout=float(server["timeout_s"]), max_retries=0)

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return call(what, self.url, self.server, fn, *args, **kwargs)

    def find_project(self, title: str) -> Any | None:
        """The one project with this exact title, or None; two with the title is an error."""
        found = self.call(f"list projects titled {title!r}",
                          lambda: [p for p in self.sdk.projects.list(title=title)
                                   if p.title == title])
        if len(found) > 1:
            raise LabelStudioError(f"Label Studio at {self.url}: {len(found)} projects are "
                                   f"titled {title!r} (ids {[p.id for p in found]}); "
                                   "rename all but one")
        return found[0] if found else None

    def project_id(self, title: str) -> int:
        project = self.find_project(title)
        if project is None:
            raise LabelStudioError(f"Label Studio at {self.url}: no project titled {title!r} "
                                   "(run `python -m annotation setup` first)")
        return project.id

    def ensure_project(self, title: str, fields: Mapping[str, Any]) -> tuple[int, str]:
        """Create the project, or update the fields that differ: (id, created|updated|unchanged)."""
        project = self.find_project(title)
        if project is None:
            created = self.call(f"create project {title!r}", self.sdk.projects.create,
                                title=title, **fields)
            return created.id, "created"
        current = self.call(f"read project {title!r}", self.sdk.projects.get, id=project.id)
        changed = {k: v for k, v in fields.items() if not same(getattr(current, k, None), v)}
        if changed:
            self.call(f"update project {title!r}", self.sdk.projects.update, id=project.id,
                      **changed)
        return project.id, "updated" if changed else "unchanged"

    def set_queue(self, project_id: int, sampling: str, model_version: str | None) -> None:
        """How the server picks each annotator's next task ("Sequential sampling" or
        "Uncertainty sampling": lowest score first among predictions of ``model_version``)."""
        fields = {"sampling": sampling, **({"model_version": model_version}
                                            if model_version else {})}
        self.call(f"set the task queue of project {project_id}", self.sdk.projects.update,
                  id=project_id, **fields)

    def _tasks_by_text(self, project_id: int) -> dict[str, int]:
        tasks = self.sdk.tasks.list(project=project_id, page_size=1000)
        return {t.data["text"]: t.id for t in tasks
                if isinstance(t.data, Mapping) and isinstance(t.data.get("text"), str)}

    def task_texts(self, project_id: int) -> set[str]:
        """``data.text`` of every task already in the project."""
        return set(self.call(f"list tasks of project {project_id}",
                             self._tasks_by_text, project_id))

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]], batch: int) -> list[int]:
        """Import in batches; returns the new task ids (texts must be new to the project)."""
        ids: list[int] = []
        for start in range(0, len(tasks), batch):
            chunk = tasks[start:start + batch]
            ids += self._import_once(project_id, chunk,
                                     f"import tasks {start + 1}-{start + len(chunk)}")
        return ids

    def _import_once(self, project_id: int, chunk: list[dict[str, Any]], what: str) -> list[int]:
        """One batch, never imported twice: an import whose answer was lost (a timeout) may
        have landed, so before each retry the server is asked which of the batch's texts it
        now holds, and only the others are sent again."""
        pending, landed, tries = chunk, [], 0

        def send() -> list[int]:
            nonlocal pending, tries
            tries += 1
            if tries > 1:
                held = self._tasks_by_text(project_id)
                landed.extend(held[t["data"]["text"]] for t in pending
                              if t["data"]["text"] in held)
                pending = [t for t in pending if t["data"]["text"] not in held]
                if not pending:
                    return []
            answer = self.sdk.projects.import_tasks(id=project_id, request=pending,
                                                    return_task_ids=True)
            return list(answer.task_ids or [])

        return self.call(what, send) + landed

    def export(self, project_id: int) -> list[Any]:
        """Every task (annotated or not) as the JSON export has it, users and predictions full."""
        snap = self.call("create export", self.sdk.projects.exports.create, project_id,
                         title="annotation export", serialization_options=SERIALIZATION)
        deadline = time.monotonic() + float(self.server["export_timeout_s"])
        while snap.status not in ("completed", "failed"):
            if time.monotonic() > deadline:
                raise LabelStudioError(f"Label Studio at {self.url}: export {snap.id} not ready "
                                       f"after {self.server['export_timeout_s']} s")
            time.sleep(0.5)
            snap = self.call("poll export", self.sdk.projects.exports.get, project_id,
                             export_pk=snap.id)
        if snap.status == "failed":
            raise LabelStudioError(f"Label Studio at {self.url}: export {snap.id} failed")
        raw = self.call("download export", lambda: b"".join(self.sdk.projects.exports.download(
            project_id, export_pk=snap.id, export_type="JSON")))
        self.call("delete export", self.sdk.projects.exports.delete, project_id,
                  export_pk=snap.id)
        try:
            tasks = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LabelStudioError(f"Label Studio at {self.url}: export is not JSON: {exc}"
                                   ) from None
        if not isinstance(tasks, list):
            raise LabelStudioError(f"Label Studio at {self.url}: export is not a task list")
        return [strip_volatile(task) for task in tasks]


def strip_volatile(task: Any) -> Any:
    """Drop fields that change with the clock alone, so equal data exports to equal bytes."""
    if isinstance(task, dict):
        for pred in task.get("predictions") or []:
            if isinstance(pred, dict):
                for key in VOLATILE_PREDICTION_KEYS:
                    pred.pop(key, None)
    return task


def export_project(url: str, api_key: str, project_title: str, out_path: str | os.PathLike,
                   server_settings: Mapping[str, Any]) -> dict[str, Any]:
    """Export a project into ``out_path`` (+ ``.sha256``); the old file survives any failure.

    Returns ``{"path", "tasks", "sha256"}``.
    """
    client = Client(url, api_key, server_settings)
    tasks = client.export(client.project_id(project_title))
    digest = write_snapshot(out_path, tasks)
    return {"path": str(Path(out_path)), "tasks": len(tasks), "sha256": digest}

