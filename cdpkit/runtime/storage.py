"""Durable Object storage: the key-value API and, for SQLite-backed classes, SQL.

Storage belongs to the object *id*, not to the instance: it survives eviction and
``ctx.abort()``, while the instance's in-memory fields do not. Values are copied in and
out (structured clone in the real runtime; pickle here), so mutating a value after ``put``
does not change what is stored.

>>> s = Storage(sqlite=True)
>>> _ = s.put("count", 1); s.get("count").result()
1
>>> s.sql.exec("CREATE TABLE t(x)").rows_written     # SQLite writes the schema row too
2
>>> _ = s.sql.exec("INSERT INTO t VALUES (?), (?)", 1, 2)
>>> s.sql.exec("SELECT sum(x) AS total FROM t").one()
{'total': 3}
"""

from __future__ import annotations

import bisect
import pickle
import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import HandlerError, LimitError
from .clock import Clock, Future, completed

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

    def __init__(self, sqlite: bool = True, on_alarm_change: Callable[[], None] | None = None,
                 clock: Clock | None = None) -> None:
        self.sqlite = sqlite
        self._clock = clock
        # set by the object: runs an awaitable with its input gate kept closed
        self.critical: Callable[[Awaitable[Any]], Awaitable[Any]] | None = None
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

    async def transaction(self, closure: Callable[[Transaction], Awaitable[Any]]) -> Any:
        """Run ``closure(txn)`` with the object's gate closed (even through I/O); if it
        raises, or calls ``txn.rollback()``, every write it made is undone."""
        txn = Transaction(self)
        try:
            run = closure(txn)
            return await (self.critical(run) if self.critical is not None else run)
        except BaseException:
            txn.rollback()
            raise
        finally:
            txn.closed = True

    # -- alarms --------------------------------------------------------------------------
    def get_alarm(self) -> Future:
        return completed(self.alarm)

    def set_alarm(self, scheduled_time: float) -> Future:
        """Schedule ``alarm()`` at virtual time ``scheduled_time`` (seconds; replaces any other)."""
        if isinstance(scheduled_time, bool) or not isinstance(scheduled_time, (int, float)):
            raise LimitError(f"set_alarm: scheduled_time={scheduled_time!r} is not allowed; "
                             "allowed: a virtual time in seconds")
        # a past time becomes now (workerd: setAlarm uses max(scheduledTime, Date.now()))
        now = self._clock.now if self._clock is not None else float("-inf")
        self.alarm = max(float(scheduled_time), now)
        if self._on_alarm_change is not None:
            self._on_alarm_change()
        return completed()

    def delete_alarm(self) -> Future:
        self.alarm = None
        if self._on_alarm_change is not None:
            self._on_alarm_change()
        return completed()

    # -- SQL -----------------------------------------------------------------------------
    def usage(self) -> dict[str, int]:
        """What the object holds and has done, for billing: ``reads``/``writes`` of the
        key-value API, SQL ``rows_read``/``rows_written``, and ``bytes`` stored (keys and
        values plus the SQL database's pages)."""
        sql = self._sql
        kv_bytes = sum(len(k.encode()) + len(v) for k, v in self._data.items())
        return {"reads": self.reads, "writes": self.writes,
                "rows_read": sql.rows_read if sql is not None else 0,
                "rows_written": sql.rows_written if sql is not None else 0,
                "bytes": kv_bytes + (sql.database_size if sql is not None else 0)}

    @property
    def sql(self) -> SqlStorage:
        """``ctx.storage.sql``: only on SQLite-backed classes (``new_sqlite_classes``)."""
        if not self.sqlite:
            raise HandlerError("ctx.storage.sql is only available on SQLite-backed Durable Object "
                               "classes; declare the class with sqlite=True (new_sqlite_classes)")
        if self._sql is None:
            self._sql = SqlStorage()
        return self._sql


class Transaction:
    """``txn`` in ``storage.transaction(closure)``: the storage calls, and ``rollback()``."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._snapshot = (dict(storage._data), list(storage._keys), storage.alarm)
        self.rolled_back = False
        self.closed = False

    def _ops(self, op: str) -> Storage:
        # the texts of workerd's DurableObjectTransaction::getCache
        if self.rolled_back:
            raise HandlerError(f"Cannot {op} on rolled back transaction")
        if self.closed:
            raise HandlerError(f"Cannot call {op} on transaction that has already committed: did "
                               "you move `txn` outside of the closure?")
        return self._storage

    def rollback(self) -> None:
        """Undo this transaction's writes; later calls on ``txn`` fail (a second rollback is fine)."""
        if self.rolled_back:
            return
        storage = self._ops("rollback()")
        storage._data, storage._keys, alarm = dict(self._snapshot[0]), list(self._snapshot[1]), self._snapshot[2]
        if storage.alarm != alarm:
            storage.alarm = alarm
            if storage._on_alarm_change is not None:
                storage._on_alarm_change()
        self.rolled_back = True

    def get(self, key: str | list[str]) -> Future:
        return self._ops("get()").get(key)

    def put(self, key: str | dict, value: Any = None) -> Future:
        return self._ops("put()").put(key, value)

    def delete(self, key: str | list[str]) -> Future:
        return self._ops("delete()").delete(key)

    def list(self, **options: Any) -> Future:
        return self._ops("list()").list(**options)

    def get_alarm(self) -> Future:
        return self._ops("getAlarm()").get_alarm()

    def set_alarm(self, scheduled_time: float) -> Future:
        return self._ops("setAlarm()").set_alarm(scheduled_time)

    def delete_alarm(self) -> Future:
        return self._ops("deleteAlarm()").delete_alarm()


class SqlCursor:
    """Result of ``sql.exec``: iterate rows as dicts, or ``to_array()``, ``one()``, ``raw()``.

    ``rows_read`` / ``rows_written`` estimate what SQLite itself reads and writes (what
    Cloudflare bills), for the last statement of the call: see :class:`SqlRunner`.
    """

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


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql``, split at the ``;`` that end one (quotes respected)."""
    out, start = [], 0
    for i, ch in enumerate(sql):
        if ch == ";" and sqlite3.complete_statement(sql[start:i + 1]):
            out.append(sql[start:i + 1])
            start = i + 1
    out.append(sql[start:])
    return [q for q in out if q.strip().rstrip(";").strip()]


_TARGET = re.compile(r"^\s*(INSERT|REPLACE|UPDATE|DELETE)\b(?:\s+OR\s+\w+)?\s+(?:INTO\s+|FROM\s+)?"
                     r"[\"`\[]?(\w+)", re.I)
_SET_CLAUSE = re.compile(r"\bSET\b(.*?)(?:\bWHERE\b|\bFROM\b|\bRETURNING\b|$)", re.I | re.S)
_ASSIGNED = re.compile(r"[\"`\[]?(\w+)[\"`\]]?\s*=(?!=)")
_LOOP = re.compile(r"^(SCAN|SEARCH) (\w+)")
_COUNT_ALL = re.compile(r"^\s*SELECT\s+count\(\s*\*\s*\)(?:\s+AS\s+\w+)?\s+FROM\s+[\"`\[]?(\w+)[\"`\]]?\s*;?\s*$",
                        re.I)


class SqlRunner:
    """Runs SQL on one sqlite3 connection the way workerd's SqliteDatabase does, and
    estimates the rows SQLite reads and writes (Durable Object SQL storage and D1).

    workerd counts at the bytecode level (its SQLite patch ``row-counts-plain``: +1 per
    Rewind/Last/Seek/successful Next, +N for ``count(*)``, +1 per table or index b-tree
    insert, +1 per row deleted). Python's sqlite3 cannot read those counters, so they are
    estimated from ``EXPLAIN QUERY PLAN`` and the schema: ``SELECT count(*) FROM t`` reads
    every row, a full scan too (at least 1), an index or rowid search reads the rows it finds, a temp b-tree (ORDER BY,
    GROUP BY) reads them again; an insert writes the row plus one entry per index, an
    update the row plus the indexes on the columns it sets, a delete one per row.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self._plans: dict[str, list[str]] = {}
        self._indexes: dict[str, list[set[str]]] = {}

    def exec(self, query: str, params: tuple, error: str
             ) -> tuple[list[str], list[tuple], int, int, int, int | None]:
        """Run every statement of ``query`` (only the last may have ``params``): (columns,
        rows, rows read, rows written, changes, last row id) of the last statement.
        SQLite errors become HandlerErrors."""
        statements = split_statements(query) if isinstance(query, str) else []
        if not statements:
            raise HandlerError(f"{error}: SQL code did not contain a statement. (query: {query!r:.80})")
        for statement in statements[:-1]:
            try:
                self.connection.execute(statement)
            except sqlite3.ProgrammingError as exc:
                if "bindings" not in str(exc):
                    raise
                raise HandlerError(
                    f"{error}: When executing multiple SQL statements in a single call, only the last "
                    f"statement can have parameters. (query: {statement.strip()[:80]!r})") from None
            except sqlite3.Error as exc:
                raise HandlerError(f"{error}: {exc} (query: {statement.strip()[:80]!r})") from None
        return self.run(statements[-1], params, error)

    def run(self, query: str, params: tuple, error: str
            ) -> tuple[list[str], list[tuple], int, int, int, int | None]:
        ddl = query.split(None, 1)[0].upper() in ("CREATE", "DROP", "ALTER")
        schema_rows = self._schema_rows() if ddl else 0
        try:
            cursor = self.connection.execute(query, params)
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
            raise HandlerError(f"{error}: {exc} (query: {query.strip()[:80]!r})") from None
        columns = [d[0] for d in cursor.description or ()]
        changes = max(cursor.rowcount, 0) if cursor.description is None else 0
        if ddl:
            self._plans.clear()
            self._indexes.clear()
            added = self._schema_rows() - schema_rows
            # CREATE writes the schema row twice (placeholder, then its sql) + one per autoindex
            read, written = (1, added + 1) if added > 0 else (0, 0)
        else:
            read = self._rows_read(query, params, len(rows) if cursor.description else changes)
            written = self._rows_written(query, changes)
        return columns, rows, read, written, changes, cursor.lastrowid

    def _schema_rows(self) -> int:
        return self.connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]

    def _rows_read(self, query: str, params: tuple, found: int) -> int:
        count_all = _COUNT_ALL.match(query)
        if count_all is not None and self._table(count_all[1], "") is not None:   # OP_Count: += rows
            return self.connection.execute(f'SELECT count(*) FROM "{count_all[1]}"').fetchone()[0]
        plan = self._plans.get(query)
        if plan is None:
            try:
                plan = [row[3] for row in self.connection.execute("EXPLAIN QUERY PLAN " + query, params)]
            except sqlite3.Error:
                plan = []
            self._plans[query] = plan
        read = 0
        for detail in plan:
            loop = _LOOP.match(detail)
            if detail.startswith("USE TEMP B-TREE"):
                read += read            # the sorter's rows are read again
            elif loop is None:
                continue
            elif loop[1] == "SCAN":
                table = self._table(loop[2], query)
                if table is not None:   # not constant rows, a subquery or a CTE
                    total = self.connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                    read += max(total, 1)   # Rewind counts even on an empty table
            else:
                read += max(found, 1)
        return read

    def _table(self, name: str, query: str) -> str | None:
        """The table a plan's loop name stands for (itself, or the table it aliases)."""
        for candidate in (name, *re.findall(rf"(\w+)\s+(?:AS\s+)?{re.escape(name)}\b", query, re.I)):
            if self.connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                       (candidate,)).fetchone():
                return candidate
        return None

    def _rows_written(self, query: str, changes: int) -> int:
        target = _TARGET.match(query)
        if target is None or not changes:
            return 0
        verb, table = target[1].upper(), target[2]
        if verb == "DELETE":
            return changes              # index deletions are not counted
        indexes = self._indexes.get(table)
        if indexes is None:
            indexes = self._indexes[table] = [
                {info[2] for info in self.connection.execute(f'PRAGMA index_info("{index[1]}")')}
                for index in self.connection.execute(f'PRAGMA index_list("{table}")')]
        if verb == "UPDATE":
            clause = _SET_CLAUSE.search(query)
            assigned = set(_ASSIGNED.findall(clause[1])) if clause else set()
            indexes = [cols for cols in indexes if cols & assigned]
        return changes * (1 + len(indexes))


class SqlStorage:
    """SQLite in memory, one database per object (``ctx.storage.sql``).

    ``exec`` runs every statement of its query (only the last may have bindings) and
    returns the last one's cursor, as workerd does.
    """

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:", isolation_level=None)
        self._runner = SqlRunner(self.connection)
        self.rows_read = self.rows_written = 0     # totals, for cost

    def exec(self, query: str, *bindings: Any) -> SqlCursor:
        columns, rows, read, written, _, _ = self._runner.exec(query, bindings, "sql exec failed")
        self.rows_read += read
        self.rows_written += written
        return SqlCursor(columns, rows, read, written)

    @property
    def database_size(self) -> int:
        page_count = self.connection.execute("PRAGMA page_count").fetchone()[0]
        page_size = self.connection.execute("PRAGMA page_size").fetchone()[0]
        return page_count * page_size
