"""D1 over sqlite3 in memory: ``prepare().bind().run()/all()/first()/raw()``, ``batch``, ``exec``.

>>> from cdpkit.runtime.clock import Clock
>>> class _Rt: clock = Clock()
>>> db = D1Database(_Rt(), "DB")
>>> _ = db.exec("CREATE TABLE dead(id TEXT, reason TEXT)")
>>> _ = db.prepare("INSERT INTO dead VALUES (?, ?)").bind("m1", "timeout").run()
>>> db.prepare("SELECT * FROM dead").all().result()["results"]
[{'id': 'm1', 'reason': 'timeout'}]
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from ..errors import HandlerError
from .clock import Future
from .env import draw_latency, io_later
from .storage import SqlRunner, split_statements

if TYPE_CHECKING:
    from .runtime import Runtime


class D1Database:
    """``env.DB``: a D1 database (SQLite semantics). ``latency`` seconds per call."""

    def __init__(self, runtime: Runtime, binding: str, database_name: str | None = None,
                 latency: float = 0.0) -> None:
        self.runtime = runtime
        self.binding = binding
        self.database_name = database_name or binding.lower().replace("_", "-")
        self.latency = latency
        self.connection = sqlite3.connect(":memory:", isolation_level=None)
        self._runner = SqlRunner(self.connection)
        self.rows_read = 0
        self.rows_written = 0
        self.queries = 0

    def prepare(self, query: str) -> D1PreparedStatement:
        if not isinstance(query, str) or not query.strip():
            raise HandlerError(f"{self.binding}.prepare: query={query!r} is not allowed; allowed: SQL text")
        return D1PreparedStatement(self, query, ())

    def _execute(self, query: str, params: tuple, error: str = "D1_ERROR") -> tuple[list[str], list[tuple], dict]:
        columns, rows, read, written, changes, last_row_id = self._runner.run(query, params, error)
        self.queries += 1
        self.rows_read += read
        self.rows_written += written
        meta = {"changes": changes, "last_row_id": last_row_id, "rows_read": read,
                "rows_written": written, "duration": self._duration()}
        return columns, rows, meta

    def insert_many(self, query: str, rows: list[tuple]) -> None:
        """Run one INSERT statement once per row of bindings, in order, as many
        ``prepare(query).bind(*row).run()`` would, without their latencies (a compiled run's
        writes): the first counts its rows read and written, each other counts the same."""
        if not rows:
            return
        meta = self._execute(query, rows[0])[2]
        self.connection.executemany(query, rows[1:])
        more = len(rows) - 1
        self.queries += more
        self.rows_read += meta["rows_read"] * more
        self.rows_written += meta["rows_written"] * more

    def _duration(self) -> float:
        return 0.0 if callable(self.latency) else self.latency

    def _io(self, value: Any) -> Future:
        return io_later(self.runtime.clock, draw_latency(self.latency), value)

    def batch(self, statements: list[D1PreparedStatement]) -> Future:
        """Run statements in one transaction; if one fails, none of them applies."""
        results = []
        self.connection.execute("BEGIN")
        try:
            for statement in statements:
                results.append(statement._all())
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")
        return self._io(results)

    def exec(self, query: str) -> Future:
        """Run one or more ``;``-separated statements without bindings (rows counted as
        for ``prepare``)."""
        statements = split_statements(query)
        for statement in statements:
            self._execute(statement, (), "D1_EXEC_ERROR")
        count = len(statements)
        return self._io({"count": count, "duration": self._duration()})

    def table(self, name: str):
        """A table as a pandas DataFrame (for notebooks and tests)."""
        import pandas as pd
        return pd.read_sql_query(f'SELECT * FROM "{name}"', self.connection)

    def __repr__(self) -> str:
        return f"<D1Database {self.binding} ({self.database_name})>"


class D1PreparedStatement:
    __slots__ = ("db", "query", "params")

    def __init__(self, db: D1Database, query: str, params: tuple) -> None:
        self.db, self.query, self.params = db, query, params

    def bind(self, *values: Any) -> D1PreparedStatement:
        for i, v in enumerate(values):
            if not (v is None or isinstance(v, (str, int, float, bytes))):
                raise HandlerError(f"D1 bind: parameter {i + 1}={v!r:.60} is not allowed; allowed: "
                                   "None, str, int, float, bytes")
        return D1PreparedStatement(self.db, self.query, values)

    def _all(self) -> dict:
        columns, rows, meta = self.db._execute(self.query, self.params)
        return {"success": True, "meta": meta, "results": [dict(zip(columns, r)) for r in rows]}

    def all(self) -> Future:
        return self.db._io(self._all())

    def run(self) -> Future:
        return self.db._io(self._all())

    def first(self, column: str | None = None) -> Future:
        rows = self._all()["results"]
        if not rows:
            return self.db._io(None)
        if column is None:
            return self.db._io(rows[0])
        if column not in rows[0]:
            raise HandlerError(f"D1_COLUMN_NOTFOUND: column {column!r} not in {list(rows[0])}")
        return self.db._io(rows[0][column])

    def raw(self, columns: bool = False) -> Future:
        cols, rows, _ = self.db._execute(self.query, self.params)
        out = [list(r) for r in rows]
        return self.db._io([cols, *out] if columns else out)
