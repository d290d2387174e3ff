"""The ledger: every message sent to every queue, one row per (message, queue), as columns.

A message inside the broker is just its row number. Columns are compact ``array``s (8
bytes a number, no object per value), so a million-message run keeps its whole history
in a few hundred MB, and results become numpy arrays without a copy per value.

>>> led = Ledger(seed=0)
>>> rows = led.add("jobs", "text", ["a", "b"], [1, 1], [0.0, 0.5], [0.0, 0.5])
>>> list(rows)
[0, 1]
>>> led.finish(rows[0], "acked", now=2.0)
>>> led.frame()[["queue", "sent", "outcome", "finished"]]
  queue  sent    outcome  finished
0  jobs   0.0      acked       2.0
1  jobs   0.5  in_flight       NaN
>>> led.id(0) == led.frame()["message_id"][0]
True
"""

from __future__ import annotations

import json
import pickle
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Ledger", "OUTCOMES", "OUTCOME_CODES", "ACKED", "MAX_FAILED", "splitmix64"]

# "rejected": a send the platform refused at the producer (production limits: "Too Many
# Requests", "Storage Limit Exceeded"); it never entered the queue.
OUTCOMES = ("acked", "dead_lettered", "dropped", "rejected")
IN_FLIGHT, ACKED, DEAD_LETTERED, DROPPED, REJECTED = 0, 1, 2, 3, 4
_OUTCOME_CODE = {"acked": ACKED, "dead_lettered": DEAD_LETTERED, "dropped": DROPPED, "rejected": REJECTED}
OUTCOME_CODES = {**_OUTCOME_CODE, "in_flight": IN_FLIGHT}
_OUTCOME_NAMES = ("in_flight", *OUTCOMES)
_MASK = (1 << 64) - 1
_INT32_MAX = 2**31 - 1
MAX_FAILED = 2**15 - 1     # the most failed attempts a row can count (the column is int16)
_CHUNK = 1 << 16
_HEX_PAIRS = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")
_json_decode = json.JSONDecoder().decode


def splitmix64(x: Any) -> Any:
    """SplitMix64's mixing function (a bijection on 64-bit words), for a Python int or a
    numpy ``uint64`` array alike: distinct rows get distinct, random-looking ids."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class Ledger:
    """Columns of every message: queue, content type, payload, bytes, timestamp (first
    send), sent (to this queue), failed attempts, outcome, finished. ``outcome`` is in
    flight until :meth:`finish` sets it, exactly once. Deliveries are kept per batch
    (:meth:`delivered`); a message's delivery count and first delivery derive from them."""

    __slots__ = ("queue", "content_type", "payload", "bytes", "timestamp", "sent", "failed", "outcome",
                 "finished", "drop_reasons", "same_as", "_delivered", "_delivered_sizes", "_delivered_at",
                 "size", "_queue_codes", "_queue_names", "_type_codes", "_type_names", "_salt", "raw_view",
                 "max_size", "on_full", "room")

    def __init__(self, seed: int = 0) -> None:
        self.queue = array("H")            # code into _queue_names
        self.content_type = array("B")     # code into _type_names
        self.payload: list[Any] = []       # serialised body (str/bytes), or a spec body (int)
        self.bytes = array("q")
        self.timestamp = array("d")        # original send time; kept when dead-lettered
        self.sent = array("d")             # when it was sent to *this* queue
        self.failed = array("h")           # failed attempts so far (at most max_retries + 1: 16 bits)
        self.outcome = array("b")          # IN_FLIGHT, ACKED, DEAD_LETTERED, DROPPED, REJECTED
        self.finished = array("d")         # NaN while in flight
        self.drop_reasons: dict[int, str] = {}
        self.same_as: dict[int, int] = {}  # a dead letter's row -> the row whose id it keeps
        self._delivered = array("q")       # the rows of each batch handed to a consumer, one after another
        #                                    (a compiled run's: int32, the kernel's own array)
        self._delivered_sizes = array("q")  # ... each batch's size
        self._delivered_at = array("d")    # ... and when
        self.size = 0                      # rows; the state columns above are allocated ahead
        self._queue_codes: dict[str, int] = {}
        self._queue_names: list[str] = []
        self._type_codes: dict[str, int] = {}
        self._type_names: list[str] = []
        rng = np.random.default_rng([seed, 0x1D5])
        self._salt = [int(v) for v in rng.integers(0, 2**63, size=2)]
        self.raw_view: Callable[[Any], Any] | None = None   # "raw" payload -> body (spec messages)
        self.max_size: float = float("inf")   # the run's message budget: on_full(size) raises
        self.on_full: Callable[[int], None] | None = None
        self.room: int | None = None   # not None: the columns are numpy arrays with room for this many rows

    def __len__(self) -> int:
        return self.size

    # -- writing ---------------------------------------------------------------------
    def add(self, queue: str, content_type: str | Sequence[int], payloads: Sequence,
            sizes: Sequence[int] | np.ndarray, timestamps: Sequence[float] | np.ndarray,
            sent: Sequence[float] | np.ndarray) -> range:
        """Append one row per payload (sizes and times as lists or numpy arrays); return their
        row numbers. ``content_type`` is one name for all, or each row's code (dead letters keep
        their own)."""
        start, n = self.size, len(payloads)
        if self.room is not None:
            if start + n <= self.room:
                return self._add_in_place(queue, content_type, payloads, sizes, timestamps, sent)
            self._thaw()
        code = self._queue_codes.get(queue)      # a known name: no call (the broker's hot path)
        if code is None:
            code = self._code(queue, self._queue_codes, self._queue_names)
        self.queue.extend(array("H", [code]) * n)
        if isinstance(content_type, str):
            code = self._type_codes.get(content_type)
            if code is None:
                code = self._code(content_type, self._type_codes, self._type_names)
            self.content_type.extend(array("B", [code]) * n)
        else:
            self.content_type.extend(array("B", content_type))
        self.payload.extend(payloads)
        if isinstance(sizes, list) and isinstance(timestamps, list) and isinstance(sent, list):
            self.bytes.extend(sizes)        # the broker's hot path, a few messages at a time:
            self.timestamp.extend(timestamps)   # the loop below costs 3-4 % of a simulation
            self.sent.extend(sent)
        else:
            for column, values in ((self.bytes, sizes), (self.timestamp, timestamps), (self.sent, sent)):
                if isinstance(values, np.ndarray):
                    column.frombytes(values.astype(column.typecode).tobytes())
                else:
                    column.extend(values)
        self.size = start + n
        if self.size > self.max_size:
            self.on_full(self.size)
        if self.size > len(self.outcome):   # the state columns grow in chunks
            grow = max(n, _CHUNK)
            self.finished.extend(array("d", [float("nan")]) * grow)
            for column in (self.failed, self.outcome):
                column.extend(array(column.typecode, [0]) * grow)
        return range(start, start + n)

    # -- numpy columns, for a compiled run --------------------------------------------
    # (payload: int32 when the room is below 2**31 rows; bytes: int64 once a size or the
    # in-flight rows' sum would not fit in int32, so a queue's backlog of them sums right)
    _COLUMNS = {"queue": np.uint16, "content_type": np.uint8, "payload": np.int64, "bytes": np.int32,
                "timestamp": np.float64, "sent": np.float64, "failed": np.int16, "outcome": np.int8,
                "finished": np.float64}

    # the growable arrays' typecodes (reserve's numpy columns may be narrower: _thaw widens them back)
    _ARRAY_TYPECODES = {"queue": "H", "content_type": "B", "bytes": "q", "timestamp": "d", "sent": "d", "failed": "h",
                        "outcome": "b", "finished": "d"}

    def reserve(self, room: int, queues: int | None = None) -> None:
        """Hold the columns as numpy arrays with room for ``room`` rows (spec bodies: the
        payloads are ints), for the compiled engine to write its rows into in place
        (:meth:`grown` then says how many it wrote): a 10M-message run's columns exist once,
        not as a copy in the engine and another here. Unwritten rows are ``np.empty``'s
        untouched pages, so a generous ``room`` costs address space, not memory. Adding past
        it, or :meth:`delivered` one batch at a time, turns them back into arrays. With
        ``queues`` (how many the run has) up to 256, queue codes take a byte a row."""
        n = self.size
        for name, dtype in self._COLUMNS.items():
            old = getattr(self, name)
            old = old[:n] if isinstance(old, (list, np.ndarray)) else np.frombuffer(old, dtype=old.typecode)[:n]
            if name == "payload" and room < 2**31:    # spec bodies are arrival indices, fewer than the rows
                dtype = np.int32
            if name == "queue" and queues is not None and queues <= 256 and not len(self._queue_names) > 256:
                dtype = np.uint8
            if name == "bytes" and n and np.max(old) > _INT32_MAX:
                dtype = np.int64
            values = np.empty(room, dtype=dtype)
            values[:n] = old
            setattr(self, name, values)         # (one column at a time: the old one goes now)
        self.room = room

    def grown(self, size: int, queues: Sequence[str], content_type: str, sizes: np.ndarray,
              columns: dict[str, np.ndarray], copies: np.ndarray) -> None:
        """The compiled engine added rows up to ``size`` into the reserved ``columns`` (given
        back: larger copies if it needed more room), as :meth:`add` and :meth:`copy_to`
        would have one group at a time: its ``queue`` column holds an index into ``queues``
        (made codes here, in order of first row, as ``add`` makes them), ``copies`` pairs
        (row, the row it is a dead letter of: it keeps that row's id); content type and
        bytes are its bodies' own (``sizes[body]``), set here."""
        start = self.size
        for name, values in columns.items():
            setattr(self, name, values)
        room = len(self.payload)
        for name in ("content_type", "bytes"):      # as long as the others
            old = getattr(self, name)
            if len(old) < room:
                values = np.empty(room, dtype=old.dtype)
                values[:start] = old[:start]
                setattr(self, name, values)
        self.room = room
        added = self.queue[start:size]
        present = np.flatnonzero(np.bincount(added, minlength=len(queues)))
        firsts = sorted((int(np.argmax(added == q)), int(q)) for q in present)
        codes = np.zeros(len(queues), dtype=added.dtype)
        for _, q in firsts:
            codes[q] = self._code(queues[q], self._queue_codes, self._queue_names)
        np.take(codes, added, out=added)
        self.content_type[start:size] = self._code(content_type, self._type_codes, self._type_names)
        sizes = np.asarray(sizes)
        if self.bytes.dtype == np.int32 and len(sizes) and sizes.max() > _INT32_MAX:
            self._widen_bytes()
        for lo in range(start, size, 1 << 20):       # (a million rows at a time: no copy of all of them)
            hi = min(lo + (1 << 20), size)
            self.bytes[lo:hi] = sizes[self.payload[lo:hi]]
        if self.bytes.dtype == np.int32:     # the rows in flight (in queues) must sum in int32 too
            in_flight = 0
            for lo in range(0, size, 1 << 20):
                hi = min(lo + (1 << 20), size)
                in_flight += int(self.bytes[lo:hi].sum(where=self.outcome[lo:hi] == IN_FLIGHT, dtype=np.int64))
            if in_flight > _INT32_MAX:
                self._widen_bytes()
        for row, old in copies.tolist():
            self.same_as[row] = self.same_as.get(old, old)
        self.size = size
        if size > self.max_size:
            self.on_full(size)

    def _add_in_place(self, queue: str, content_type: str | Sequence[int], payloads: Sequence,
                      sizes: Sequence[int] | np.ndarray, timestamps: Sequence[float] | np.ndarray,
                      sent: Sequence[float] | np.ndarray) -> range:
        """:meth:`add` into reserved numpy columns."""
        start = self.size
        end = start + len(payloads)
        self.queue[start:end] = self._code(queue, self._queue_codes, self._queue_names)
        self.content_type[start:end] = (self._code(content_type, self._type_codes, self._type_names)
                                        if isinstance(content_type, str) else content_type)
        if self.bytes.dtype == np.int32 and end > start and np.max(sizes) > _INT32_MAX:
            self._widen_bytes()
        for name, values in (("payload", payloads), ("bytes", sizes), ("timestamp", timestamps), ("sent", sent)):
            getattr(self, name)[start:end] = values
        self.failed[start:end], self.outcome[start:end], self.finished[start:end] = 0, 0, np.nan
        self.size = end
        if end > self.max_size:
            self.on_full(end)
        return range(start, end)

    def _widen_bytes(self) -> None:
        """The reserved ``bytes`` column as int64 (a size, or a backlog, past int32)."""
        self.bytes = self.bytes.astype(np.int64)

    def _thaw(self) -> None:
        """Reserved numpy columns back to growable arrays (and a list of payloads)."""
        n, self.room = self.size, None
        for name in self._COLUMNS:
            values = getattr(self, name)[:n]
            if name == "payload":
                setattr(self, name, values.tolist())
            else:       # (as add() writes them: queue codes uint16, bytes int64)
                typecode = self._ARRAY_TYPECODES[name]
                setattr(self, name, array(typecode, values.astype(np.dtype(typecode), copy=False).tobytes()))
        for name, typecode in (("_delivered", "q"), ("_delivered_sizes", "q"), ("_delivered_at", "d")):
            values = getattr(self, name)
            if isinstance(values, np.ndarray):
                setattr(self, name, array(typecode, values.astype(np.dtype(typecode), copy=False).tobytes()))

    def copy_to(self, queue: str, rows: Sequence[int], sent: float) -> range:
        """Dead letters: the same messages (id, body, timestamp) on another queue."""
        new = self.add(queue, [self.content_type[r] for r in rows], [self.payload[r] for r in rows],
                       [self.bytes[r] for r in rows], [self.timestamp[r] for r in rows], [sent] * len(rows))
        for old, row in zip(rows, new):
            self.same_as[row] = self.same_as.get(old, old)
        return new

    def finish(self, row: int, outcome: str, now: float, reason: str | None = None) -> None:
        """Record a row's final outcome; each row finishes exactly once."""
        if self.outcome[row]:
            raise AssertionError(f"message {self.id(row)} on {self.queue_of(row)} finished twice "
                                 f"({_OUTCOME_NAMES[self.outcome[row]]}, then {outcome})")
        self.outcome[row] = _OUTCOME_CODE[outcome]
        self.finished[row] = now
        if reason is not None:
            self.drop_reasons[row] = reason

    def delivered(self, rows: list[int], now: float) -> None:
        """``rows`` were delivered (as one batch) at ``now``."""
        if self.room is not None:
            self._thaw()
        self._delivered.extend(rows)
        self._delivered_sizes.append(len(rows))
        self._delivered_at.append(now)

    def delivered_batches(self, rows: np.ndarray, sizes: np.ndarray, times: np.ndarray) -> None:
        """Many batches delivered, in order (:meth:`delivered` for each; a compiled run's:
        with reserved columns, the first such call keeps the arrays themselves, ``rows`` as
        int32 if they are: 4 bytes a delivery)."""
        if self.room is not None and not len(self._delivered_sizes):
            self._delivered, self._delivered_sizes, self._delivered_at = (
                np.ascontiguousarray(rows, dtype=np.int32 if np.asarray(rows).dtype == np.int32 else np.int64),
                np.ascontiguousarray(sizes, dtype=np.int64),
                np.ascontiguousarray(times, dtype=np.float64))
            return
        if self.room is not None:
            self._thaw()
        self._delivered.frombytes(np.asarray(rows, dtype=np.int64).tobytes())
        self._delivered_sizes.frombytes(np.asarray(sizes, dtype=np.int64).tobytes())
        self._delivered_at.frombytes(np.asarray(times, dtype=np.float64).tobytes())

    def batch_sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per batch delivered, in order: its queue's code and its size."""
        sizes = np.asarray(self._delivered_sizes, dtype=np.int64)
        firsts = np.asarray(self._delivered)[np.cumsum(sizes) - sizes]     # (int64, or a compiled run's int32)
        return self.view("queue")[firsts].astype(np.int64), sizes.copy()   # copies: the caller may keep them

    def deliveries(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row: how many times it was delivered, and when first (NaN if never)."""
        first = np.full(self.size, np.nan)
        for rows, times in self.delivery_chunks():   # the earliest delivery is written last
            first[rows[::-1]] = times[::-1]
        return np.bincount(np.asarray(self._delivered), minlength=self.size), first

    def delivery_chunks(self, step: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The deliveries, whole batches at a time (about ``step`` deliveries a chunk), the
        last chunk first: each chunk's rows (int64, or a compiled run's int32) and when each
        was delivered. Batches are in time order, so a reader that writes each chunk reversed
        is left with every row's earliest delivery, without a time per delivery for all of
        them (8 bytes each). The rows are a view: use them, then drop them."""
        sizes = np.asarray(self._delivered_sizes, dtype=np.int64)
        if not len(sizes):
            return
        rows, at = np.asarray(self._delivered), np.asarray(self._delivered_at, dtype=np.float64)
        ends = np.cumsum(sizes)
        cuts = np.searchsorted(ends, np.arange(step, ends[-1], step), side="right")
        bounds = sorted({0, len(sizes), *(int(c) for c in cuts if 0 < c < len(sizes))})
        for lo, hi in reversed(list(zip(bounds, bounds[1:]))):
            yield rows[int(ends[lo] - sizes[lo]):int(ends[hi - 1])], np.repeat(at[lo:hi], sizes[lo:hi])

    def finish_all(self, rows: Sequence[int], code: int, now: float) -> None:
        """:meth:`finish` for many rows with one outcome code (the broker's hot path)."""
        if self.room is not None:
            self._thaw()
        outcome, finished = self.outcome, self.finished
        n = len(rows)
        if n >= 32:      # rows first, first + 1, ... in flight (a big batch, often): by slices
            first = rows[0]
            end = first + n
            if rows[-1] == end - 1 and outcome[first:end].count(IN_FLIGHT) == n and rows == [*range(first, end)]:
                outcome[first:end] = array("b", [code]) * n
                finished[first:end] = array("d", [now]) * n
                return
        for row in rows:
            if outcome[row]:
                self.finish(row, _OUTCOME_NAMES[code], now)   # raises: finished twice
            outcome[row] = code
            finished[row] = now

    @staticmethod
    def _code(name: str, codes: dict[str, int], names: list[str]) -> int:
        code = codes.get(name)
        if code is None:
            code = codes[name] = len(names)
            names.append(name)
        return code

    # -- reading ---------------------------------------------------------------------
    def queue_of(self, row: int) -> str:
        return self._queue_names[self.queue[row]]

    def body(self, row: int) -> Any:
        """A fresh copy of the body, as the consumer's isolate would deserialise it."""
        content_type, payload = self._type_names[self.content_type[row]], self.payload[row]
        if content_type == "json":
            return _json_decode(payload)
        if content_type == "v8":
            return pickle.loads(payload)
        if content_type == "raw" and self.raw_view is not None:
            return self.raw_view(payload)
        return payload  # text (str) and bytes are immutable

    def id(self, row: int) -> str:
        """The message's id: 32 hex digits, random-looking, the same on a dead letter queue."""
        n = self.same_as.get(row, row)
        return f"{splitmix64(n ^ self._salt[0]):016x}{splitmix64(n ^ self._salt[1]):016x}"

    def ids(self, rows: np.ndarray) -> np.ndarray:
        """:meth:`id` for many rows at once (numpy)."""
        n = rows.astype(np.uint64)
        if self.same_as:   # keys were added in row order, so they are sorted
            keys = np.fromiter(self.same_as.keys(), np.int64, len(self.same_as))
            where = np.minimum(np.searchsorted(keys, rows), len(keys) - 1)
            hit = keys[where] == rows
            n[hit] = np.fromiter(self.same_as.values(), np.uint64, len(keys))[where[hit]]
        words = np.stack([splitmix64(n ^ np.uint64(salt)) for salt in self._salt], axis=1)
        digits = _HEX_PAIRS[words.astype(">u8").view(np.uint8)].tobytes().decode("ascii")
        return np.array([digits[i:i + 32] for i in range(0, len(digits), 32)], dtype=object)

    def queue_code(self, queue: str) -> int:
        """The code of a queue in the ``queue`` column (-1 if it has no rows)."""
        return self._queue_codes.get(queue, -1)

    def type_code(self, content_type: str) -> int:
        """The code of a content type in the ``content_type`` column (-1 if never used)."""
        return self._type_codes.get(content_type, -1)

    def column(self, name: str) -> np.ndarray:
        """A numpy copy of one column, e.g. ``ledger.column("outcome")``."""
        return self.view(name).copy()   # a copy: a view would stop the array from growing

    def view(self, name: str) -> np.ndarray:
        """One column's first ``len(self)`` rows as a read-only numpy view (no copy): valid
        until the ledger next grows (then take a new one), e.g. ``ledger.view("sent")``."""
        values = getattr(self, name)
        out = np.frombuffer(values, dtype=getattr(values, "typecode", None) or values.dtype)[:self.size]
        out.flags.writeable = False
        return out

    def counts(self) -> pd.DataFrame:
        """Per queue: sent, acked, dead_lettered, dropped, rejected, in_flight."""
        size, n = len(self._queue_names), len(_OUTCOME_NAMES)
        table = np.zeros(size * n, dtype=np.int64)
        queue, outcome, step = self.view("queue"), self.view("outcome"), 1 << 20
        for start in range(0, len(queue), step):    # a million rows at a time: no copy of the columns
            code = queue[start:start + step].astype(np.int64)
            code *= n
            code += outcome[start:start + step]
            table += np.bincount(code, minlength=size * n)
        del queue, outcome
        table = table.reshape(size, n)
        frame = pd.DataFrame(table[:, [ACKED, DEAD_LETTERED, DROPPED, REJECTED, IN_FLIGHT]],
                             index=pd.Index(self._queue_names, name="queue"),
                             columns=[*OUTCOMES, "in_flight"])
        frame.insert(0, "sent", table.sum(axis=1))
        return frame

    def frame(self, ids: bool = True) -> pd.DataFrame:
        """One row per message per queue (dead letters appear again on their DLQ);
        ``ids=False`` leaves out ``message_id`` (the costly column: a string a row)."""
        n = len(self)
        outcome = self.view("outcome")
        deliveries, first_delivered = self.deliveries()
        reasons = np.full(n, None, dtype=object)
        if self.drop_reasons:
            reasons[list(self.drop_reasons)] = list(self.drop_reasons.values())
        frame = pd.DataFrame({     # copy=True: the frame keeps no view of the ledger's columns
            "queue": categorical(self.view("queue"), self._queue_names),
            "content_type": categorical(self.view("content_type"), self._type_names),
            "bytes": self.view("bytes").astype(np.int64),     # (a compiled run's column is int32)
            "sent": self.view("sent"),
            "first_delivered": first_delivered,
            "deliveries": deliveries,
            "attempts": self.view("failed").astype(np.int64) + (outcome == ACKED),
            "outcome": categorical(outcome, _OUTCOME_NAMES),
            "finished": self.view("finished"),
            "drop_reason": reasons,
        }, copy=True)
        del outcome
        frame["wait"] = frame["first_delivered"] - frame["sent"]
        frame["latency"] = frame["finished"] - frame["sent"]
        if ids:
            frame.insert(0, "message_id", self.ids(np.arange(n)))
        return frame


def categorical(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical:
    """Codes (-1 = missing) as a Categorical of the names that occur, sorted, as
    ``pd.Categorical(values)`` would give (in O(n): no sort of the values)."""
    codes = codes.astype(np.int64)
    used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(names)))
    order = sorted(used.tolist(), key=lambda code: names[code])
    remap = np.full(len(names) + 1, -1, dtype=np.int64)     # the last slot maps -1 to -1
    remap[order] = np.arange(len(order))
    return pd.Categorical.from_codes(remap[codes], categories=[names[code] for code in order])
