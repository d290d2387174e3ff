"""The record of a run: every batch and every delivery, as pandas DataFrames on demand.

Rows are kept as plain tuples while the run goes (cheap on the hot path) and turned into
DataFrames only when asked for.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .ledger import Ledger
    from .queues import BatchResult

DELIVERY_COLUMNS = ["queue", "batch", "delivered_at", "finished_at", "message_id", "attempts",
                    "disposition"]
CALL_COLUMNS = ["binding", "object", "method", "arrived", "started", "finished", "outcome"]
BATCH_COLUMNS = ["queue", "batch", "delivered_at", "finished_at", "size", "outcome", "retry_all",
                 "ack_all", "acked", "retried", "dead_lettered", "dropped"]


class Trace:
    """Collects batches and deliveries while a runtime runs."""

    __slots__ = ("_open", "_deliveries", "_delivery_blocks", "_batches", "_batch_blocks", "_calls", "_call_blocks",
                 "call_logs", "warnings", "errors", "keep_deliveries")

    def __init__(self, keep_deliveries: bool = True) -> None:
        self.keep_deliveries = keep_deliveries   # a row per delivery (batches are always kept)
        self._open: dict[int, tuple] = {}
        self._calls: list[list] = []            # requests to code actors, one row each
        self._call_blocks: list[dict] = []      # ... or, made by a compiled run, as columns
        self.call_logs: list[CallLog] = []       # requests to spec actors, as columns
        self._deliveries: list[tuple] = []      # message_id holds the ledger row until asked for
        self._delivery_blocks: list[pd.DataFrame] = []   # ... recorded many at once (a compiled run)
        self._batches: list[tuple] = []
        self._batch_blocks: list[pd.DataFrame] = []   # batches recorded many at once (a compiled run)
        self.warnings: list[tuple[float, str, int, str]] = []
        self.errors: list[tuple[float, str, int, BaseException, str]] = []   # + traceback

    def batch_started(self, batch_id: int, queue: str, t: float, batch: list[int], ledger: Ledger) -> None:
        failed = ledger.failed
        attempts = [int(failed[row]) + 1 for row in batch] if self.keep_deliveries else None
        self._open[batch_id] = (queue, t, len(batch), attempts)

    def batch_finished(self, batch_id: int, t: float, batch: list[int], dispositions: list[str],
                       ok: bool, result: BatchResult) -> None:
        queue, started, _, attempts = self._open.pop(batch_id)
        if self.keep_deliveries:
            append = self._deliveries.append
            for row, tries, disposition in zip(batch, attempts, dispositions):
                append((queue, batch_id, started, t, row, tries, disposition))
        self._batches.append((
            queue, batch_id, started, t, len(batch), "ok" if ok else "exception",
            result.retry_all, result.ack_all, dispositions.count("acked"),
            dispositions.count("retried"), dispositions.count("dead_lettered"),
            dispositions.count("dropped"),
        ))
        for text in result.warnings:
            self.warnings.append((t, queue, batch_id, text))

    def add_call_log(self, log: CallLog) -> CallLog:
        """Keep a spec actor pool's call log (its calls appear in ``rt.actor_calls``)."""
        self.call_logs.append(log)
        return log

    def actor_call(self, binding: str, obj: str, method: str, t: float) -> list:
        """A request to an object; the caller fills in started, finished and outcome."""
        record = [binding, obj, method, t, None, None, None]
        self._calls.append(record)
        return record

    def add_actor_calls(self, columns: dict[str, np.ndarray]) -> None:
        """Requests to objects made elsewhere (a compiled run's), finished, after those so
        far, as columns named as :meth:`actor_call`'s records (``CALL_COLUMNS``; strings as
        object arrays): 36 bytes a call instead of a list of seven objects."""
        self._call_blocks.append(columns)

    def actor_calls(self) -> pd.DataFrame:
        parts = [pd.DataFrame(block, columns=CALL_COLUMNS) for block in self._call_blocks]
        if self._calls or not parts:     # (times are floats: NaN, not None, for not yet)
            parts.insert(0, pd.DataFrame(self._calls, columns=CALL_COLUMNS).astype(
                {"arrived": float, "started": float, "finished": float}))
        frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        logs = [log.frame() for log in self.call_logs if len(log)]
        if logs:
            calls = len(frame)
            frame = pd.concat([frame, *logs] if calls else logs, ignore_index=True)
            if len(logs) > 1 or calls:
                frame = frame.sort_values("arrived", kind="stable", ignore_index=True)
        frame["wait"] = frame["started"] - frame["arrived"]
        frame["duration"] = frame["finished"] - frame["started"]
        return frame

    def error(self, t: float, queue: str, batch_id: int, error: BaseException,
              traceback: str = "") -> None:
        self.errors.append((t, queue, batch_id, error, traceback))

    @property
    def in_progress(self) -> int:
        """Messages inside batches whose handler has not returned yet."""
        return sum(size for _, _, size, _ in self._open.values())

    def in_progress_by_queue(self) -> dict[str, int]:
        """:attr:`in_progress`, per queue."""
        counts: dict[str, int] = {}
        for queue, _, size, _ in self._open.values():
            counts[queue] = counts.get(queue, 0) + size
        return counts

    def deliveries(self, ledger: Ledger) -> pd.DataFrame:
        if not self.keep_deliveries:
            raise ValueError("this run did not keep a row per delivery; run it with "
                             "simulate(..., trace=True) (Results.messages and .batches are always kept)")
        frame = pd.DataFrame(self._deliveries, columns=DELIVERY_COLUMNS)   # message_id: a row so far
        if self._delivery_blocks:
            frame = pd.concat([frame, *self._delivery_blocks] if self._deliveries else self._delivery_blocks,
                              ignore_index=True)
        if len(frame):
            frame["message_id"] = ledger.ids(frame["message_id"].to_numpy(np.int64))
        return frame

    def batches(self) -> pd.DataFrame:
        frame = pd.DataFrame(self._batches, columns=BATCH_COLUMNS)
        if not self._batch_blocks:
            return frame
        return pd.concat([frame, *self._batch_blocks] if self._batches else self._batch_blocks, ignore_index=True)

    def batches_finished(self, columns: dict) -> None:
        """Many batches finished, in order (:meth:`batch_finished` for each; a compiled
        run's): ``columns`` holds each column of :data:`BATCH_COLUMNS`, arrays the frame
        keeps (not a copy of them: the caller gives them up)."""
        self._batch_blocks.append(pd.DataFrame(columns, columns=BATCH_COLUMNS, copy=False))

    def deliveries_finished(self, columns: dict) -> None:
        """The deliveries of many finished batches, in order (what :meth:`batch_finished` keeps
        for each with ``keep_deliveries``; a compiled run's): each column of
        :data:`DELIVERY_COLUMNS` (``message_id``: ledger rows)."""
        self._delivery_blocks.append(pd.DataFrame(columns, columns=DELIVERY_COLUMNS, copy=False))

    def __len__(self) -> int:
        return len(self._deliveries) + sum(map(len, self._delivery_blocks))


def call_outcomes(finished: np.ndarray) -> np.ndarray:
    """A call's outcome from its finish time: "ok", or None while it has not finished."""
    return np.where(np.isnan(finished), None, "ok").astype(object)


class CallLog:
    """Requests to the instances of one spec actor class, as columns (28 bytes a request,
    not a list of objects), appended by ``SpecActors``: ``started`` and ``finished`` are NaN
    until the request gets its instance and ends (a run stopped before, ``drain=False``,
    shows them so, with outcome None)."""

    __slots__ = ("binding", "method", "names", "key", "arrived", "started", "finished", "outcomes")

    def __init__(self, binding: str, method: str, names: list[str]) -> None:
        self.binding, self.method, self.names = binding, method, names
        self.key = array("i")      # the instance's index (32 bits; a compiled run's are int32 too)
        self.arrived, self.started, self.finished = array("d"), array("d"), array("d")
        self.outcomes: dict[int, str] = {}      # the calls that did not end "ok" (rare), by row

    def __len__(self) -> int:
        return len(self.key)

    def take(self, key: np.ndarray, arrived: np.ndarray, started: np.ndarray, finished: np.ndarray,
             mine: np.ndarray | None = None) -> None:
        """Many calls at once (a compiled run's; ``mine``: which of them are this class's):
        into an empty log, the arrays themselves, not a copy (10M calls are 320 MB)."""
        empty = not len(self)
        for name, values in {"key": key, "arrived": arrived, "started": started, "finished": finished}.items():
            if mine is not None:
                values = values[mine]
            if empty:
                setattr(self, name, values)
            else:
                column = getattr(self, name)
                column.frombytes(values.astype(np.dtype(column.typecode), copy=False).tobytes())

    def frame(self) -> pd.DataFrame:
        n = len(self)
        finished = np.frombuffer(self.finished).copy()
        outcome = call_outcomes(finished)
        for row, what in self.outcomes.items():
            outcome[row] = what
        return pd.DataFrame({
            "binding": [self.binding] * n,
            "object": np.asarray(self.names, dtype=object)[np.asarray(self.key)],
            "method": [self.method] * n,
            "arrived": np.frombuffer(self.arrived).copy(),
            "started": np.frombuffer(self.started).copy(),
            "finished": finished,
            "outcome": outcome,
        })
