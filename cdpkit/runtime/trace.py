"""The record of a run: every batch and every delivery, as pandas DataFrames on demand.

Rows are kept as plain tuples while the run goes (cheap on the hot path) and turned into
DataFrames only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from .queues import BatchResult, QueuedMessage

DELIVERY_COLUMNS = ["queue", "batch", "delivered_at", "finished_at", "message_id", "attempts",
                    "disposition"]
CALL_COLUMNS = ["binding", "object", "method", "arrived", "started", "finished", "outcome"]
BATCH_COLUMNS = ["queue", "batch", "delivered_at", "finished_at", "size", "outcome", "retry_all",
                 "ack_all", "acked", "retried", "dead_lettered", "dropped"]


class Trace:
    """Collects batches and deliveries while a runtime runs."""

    __slots__ = ("_open", "_deliveries", "_batches", "_calls", "warnings", "errors", "keep_deliveries")

    def __init__(self, keep_deliveries: bool = True) -> None:
        self.keep_deliveries = keep_deliveries   # a row per delivery (batches are always kept)
        self._open: dict[int, tuple] = {}
        self._calls: list[list] = []
        self._deliveries: list[tuple] = []
        self._batches: list[tuple] = []
        self.warnings: list[tuple[float, str, int, str]] = []
        self.errors: list[tuple[float, str, int, BaseException]] = []

    def batch_started(self, batch_id: int, queue: str, t: float, batch: list[QueuedMessage]) -> None:
        self._open[batch_id] = (queue, t, [r.failed_attempts + 1 for r in batch])

    def batch_finished(self, batch_id: int, t: float, batch: list[QueuedMessage],
                       dispositions: list[str], ok: bool, result: BatchResult) -> None:
        queue, started, attempts = self._open.pop(batch_id)
        if self.keep_deliveries:
            append = self._deliveries.append
            for record, tries, disposition in zip(batch, attempts, dispositions):
                append((queue, batch_id, started, t, record.id, tries, disposition))
        self._batches.append((
            queue, batch_id, started, t, len(batch), "ok" if ok else "exception",
            result.retry_all, result.ack_all, dispositions.count("acked"),
            dispositions.count("retried"), dispositions.count("dead_lettered"),
            dispositions.count("dropped"),
        ))
        for text in result.warnings:
            self.warnings.append((t, queue, batch_id, text))

    def actor_call(self, binding: str, obj: str, method: str, t: float) -> list:
        """A request to an object; the caller fills in started, finished and outcome."""
        record = [binding, obj, method, t, None, None, None]
        self._calls.append(record)
        return record

    def actor_calls(self) -> pd.DataFrame:
        frame = pd.DataFrame(self._calls, columns=CALL_COLUMNS)
        frame["wait"] = frame["started"] - frame["arrived"]
        frame["duration"] = frame["finished"] - frame["started"]
        return frame

    def error(self, t: float, queue: str, batch_id: int, error: BaseException) -> None:
        self.errors.append((t, queue, batch_id, error))

    @property
    def in_progress(self) -> int:
        """Messages inside batches whose handler has not returned yet."""
        return sum(len(attempts) for _, _, attempts in self._open.values())

    def deliveries(self) -> pd.DataFrame:
        if not self.keep_deliveries:
            raise ValueError("this run did not keep a row per delivery; run it with "
                             "simulate(..., trace=True) (Results.messages and .batches are always kept)")
        return pd.DataFrame(self._deliveries, columns=DELIVERY_COLUMNS)

    def batches(self) -> pd.DataFrame:
        return pd.DataFrame(self._batches, columns=BATCH_COLUMNS)

    def __len__(self) -> int:
        return len(self._deliveries)
