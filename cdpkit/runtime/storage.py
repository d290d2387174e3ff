"""Durable Object storage: the key-value API and, for SQLite-backed classes, SQL.

Storage belongs to the object *id*, not to the instance: it survives eviction and
``ctx.abort()``, while the instance's in-memory fields do not. Values are copied in and
out (structured clone in the real runtime; pickle here), so mutating a value after ``put``
does not change what is stored.

>>> s = Storage(sqlite=True)
>>> _ = s.put("count", 1); s.get("count").result()
1
>>> s.sql.exec("CREATE TABLE t(x)").rows_written
0
>>> _ = s.sql.exec("INSERT INTO t VALUES (?), (?)", 1, 2)
>>> s.sql.exec("SELECT sum(x) AS total FROM t").one()
{'total': 3}
"""

from __future__ import annotations

import bisect
import pickle
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import HandlerError, LimitError
from .clock import Future, completed

KV_BACKEND_MAX_KEY = 2_048
KV_BACKEND_MAX_VALUE = 128 * 1024
SQLITE_BACKEND_MAX_PAIR = 2 * 1024 * 1024


def _clone(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise LimitError(f"storage value {value!r:.60} cannot be stored ({exc}); allowed: values "
                         "that can be structured-cloned (plain data)") from None


class Storage:
    """``ctx.storage``: get/put/delete/list/transaction, alarms, and ``sql`` when SQLite-backed."""

    def __init__(self, sqlite: bool = True, on_alarm_change: Callable[[], None] | None = None) -> None:
        self.sqlite = sqlite
        self._data: dict[str, bytes] = {}
        self._keys: list[str] = []           # sorted, for list()
        self._sql: SqlStorage | None = None
        self.alarm: float | None = None
        self._on_alarm_change = on_alarm_change
        self.reads = 0
        self.writes = 0

    # -- limits ------------------------------------------------------------------------
    def _check(self, key: object, blob: bytes | None = None) -> str:
        if not isinstance(key, str):
            raise LimitError(f"storage key {key!r} is not allowed; allowed: a str")
        size = len(key.encode())
        if self.sqlite:
            total = size + (len(blob) if blob is not None else 0)
            if total > SQLITE_BACKEND_MAX_PAIR:
                raise LimitError(f"storage key {key[:40]!r} + value is {total} bytes; allowed: at "
                                 f"most {SQLITE_BACKEND_MAX_PAIR} bytes (SQLite-backed object)")
        else:
            if size > KV_BACKEND_MAX_KEY:
                raise LimitError(f"storage key of {size} bytes is not allowed; allowed: at most "
                                 f"{KV_BACKEND_MAX_KEY} bytes")
            if blob is not None and len(blob) > KV_BACKEND_MAX_VALUE:
                raise LimitError(f"storage value for key {key[:40]!r} is {len(blob)} bytes; allowed: "
                                 f"at most {KV_BACKEND_MAX_VALUE} bytes (128 KiB, KV-backed object)")
        return key

    # -- raw (synchronous) access, also used by persist fields ---------------------------
    def read(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        blob = self._data.get(key)
        return default if blob is None else pickle.loads(blob)

    def write(self, key: str, value: Any) -> None:
        blob = _clone(value)
        self._check(key, blob)
        self.writes += 1
        if key not in self._data:
            bisect.insort(self._keys, key)
        self._data[key] = blob

    def remove(self, key: str) -> bool:
        self._check(key)
        if key in self._data:
            del self._data[key]
            del self._keys[bisect.bisect_left(self._keys, key)]
            self.writes += 1
            return True
        return False

    # -- the Workers API (awaitable) -----------------------------------------------------
    def get(self, key: str | list[str]) -> Future:
        """``await storage.get("k")`` -> value or None; a list of keys -> dict of those found."""
        if isinstance(key, list):
            return completed({k: self.read(self._check(k)) for k in key if k in self._data})
        return completed(self.read(self._check(key)))

    def put(self, key: str | dict, value: Any = None) -> Future:
        """``await storage.put("k", v)`` or ``await storage.put({"a": 1, "b": 2})``."""
        if isinstance(key, dict):
            for k, v in key.items():
                self.write(k, v)
        else:
            self.write(key, value)
        return completed()

    def delete(self, key: str | list[str]) -> Future:
        """Delete a key (-> whether it existed) or a list of keys (-> how many existed)."""
        if isinstance(key, list):
            return completed(sum(self.remove(k) for k in key))
        return completed(self.remove(key))

    def delete_all(self) -> Future:
        self._data.clear()
        self._keys.clear()
        self._sql = None
        self.alarm = None
        return completed()

    def list(self, *, prefix: str | None = None, start: str | None = None,
             start_after: str | None = None, end: str | None = None, reverse: bool = False,
             limit: int | None = None) -> Future:
        """Keys in order (``reverse`` for descending), filtered like the Workers API."""
        keys = self._keys
        lo = 0
        if start is not None:
            lo = bisect.bisect_left(keys, start)
        if start_after is not None:
            lo = max(lo, bisect.bisect_right(keys, start_after))
        hi = len(keys) if end is None else bisect.bisect_left(keys, end)
        selected = [k for k in keys[lo:hi] if prefix is None or k.startswith(prefix)]
        if reverse:
            selected.reverse()
        if limit is not None:
            selected = selected[:limit]
        return completed({k: self.read(k) for k in selected})

    async def transaction(self, closure: Callable[[Storage], Awaitable[Any]]) -> Any:
        """Run ``closure(txn)``; if it raises, every write it made is undone."""
        snapshot = (dict(self._data), list(self._keys), self.alarm)
        try:
            return await closure(self)
        except BaseException:
            self._data, self._keys, self.alarm = snapshot[0], snapshot[1], snapshot[2]
            raise

    # -- alarms --------------------------------------------------------------------------
    def get_alarm(self) -> Future:
        return completed(self.alarm)

    def set_alarm(self, scheduled_time: float) -> Future:
        """Schedule ``alarm()`` at virtual time ``scheduled_time`` (seconds; replaces any other)."""
        if isinstance(scheduled_time, bool) or not isinstance(scheduled_time, (int, float)):
            raise LimitError(f"set_alarm: scheduled_time={scheduled_time!r} is not allowed; "
                             "allowed: a virtual time in seconds")
        self.alarm = float(scheduled_time)
        if self._on_alarm_change is not None:
            self._on_alarm_change()
        return completed()

    def delete_alarm(self) -> Future:
        self.alarm = None
        if self._on_alarm_change is not None:
            self._on_alarm_change()
        return completed()

    # -- SQL -----------------------------------------------------------------------------
    @property
    def sql(self) -> SqlStorage:
        """``ctx.storage.sql``: only on SQLite-backed classes (``new_sqlite_classes``)."""
        if not self.sqlite:
            raise HandlerError("ctx.storage.sql is only available on SQLite-backed Durable Object "
                               "classes; declare the class with sqlite=True (new_sqlite_classes)")
        if self._sql is None:
            self._sql = SqlStorage()
        return self._sql


class SqlCursor:
    """Result of ``sql.exec``: iterate rows as dicts, or ``to_array()``, ``one()``, ``raw()``."""

    def __init__(self, columns: list[str], rows: list[tuple], rows_read: int, rows_written: int) -> None:
        self.column_names = columns
        self._rows = rows
        self.rows_read = rows_read
        self.rows_written = rows_written

    def to_array(self) -> list[dict]:
        return [dict(zip(self.column_names, row)) for row in self._rows]

    def raw(self) -> list[tuple]:
        return list(self._rows)

    def one(self) -> dict:
        if len(self._rows) != 1:
            raise HandlerError(f"sql one(): expected exactly one row, got {len(self._rows)}")
        return dict(zip(self.column_names, self._rows[0]))

    def __iter__(self):
        return iter(self.to_array())


def execute_sql(connection: sqlite3.Connection, query: str, params: tuple,
                error: str) -> tuple[list[str], list[tuple], int, int | None]:
    """Run one statement: (column names, rows, rows written, last row id). Shared by
    Durable Object SQL storage and D1; sqlite errors become HandlerErrors."""
    try:
        cursor = connection.execute(query, params)
    except sqlite3.Error as exc:
        raise HandlerError(f"{error}: {exc} (query: {query[:80]!r})") from None
    rows = cursor.fetchall()
    columns = [d[0] for d in cursor.description or ()]
    written = max(cursor.rowcount, 0) if cursor.description is None else 0
    return columns, rows, written, cursor.lastrowid


class SqlStorage:
    """SQLite in memory, one database per object (``ctx.storage.sql``)."""

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:", isolation_level=None)

    def exec(self, query: str, *bindings: Any) -> SqlCursor:
        columns, rows, written, _ = execute_sql(self.connection, query, bindings, "sql exec failed")
        return SqlCursor(columns, rows, len(rows), written)

    @property
    def database_size(self) -> int:
        page_count = self.connection.execute("PRAGMA page_count").fetchone()[0]
        page_size = self.connection.execute("PRAGMA page_size").fetchone()[0]
        return page_count * page_size
