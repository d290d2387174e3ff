"""Workers KV: get/put/delete/list with expiration, limits and optional propagation delay.

KV is eventually consistent: with ``propagation_delay=d`` a write becomes visible to
reads ``d`` seconds later (Cloudflare: up to ~60 s elsewhere). ``latency`` makes each
call take that long. Every call is I/O: a Durable Object awaiting one serves its queued
requests meanwhile, whatever the latency (as in workerd).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import LimitError
from .clock import Future
from .env import IoFuture, draw_latency, io_later

if TYPE_CHECKING:
    from .runtime import Runtime

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_METADATA_BYTES = 1024
MIN_TTL = 60


def put_rate_error(binding: str, key: str, since: float, rate: float) -> LimitError:
    """What a put to ``key``, written ``since`` seconds ago, fails with at ``rate`` writes a second."""
    return LimitError(f"{binding}.put: KV PUT failed: 429 Too Many Requests: key {key!r} was written {since:g} s "
                      f"ago; allowed: {rate:g} write per second to one key")


class KVNamespace:
    """``env.MY_KV``. Values are str or bytes (``get(key, type="json")`` parses JSON)."""

    def __init__(self, runtime: Runtime, binding: str, propagation_delay: float = 0.0,
                 latency: float = 0.0) -> None:
        self.runtime = runtime
        self.binding = binding
        self.propagation_delay = propagation_delay
        self.latency = latency
        # key -> list of versions (visible_at, value or None for a delete, expires_at, metadata)
        self._versions: dict[str, list[tuple]] = {}
        self.reads = self.writes = self.deletes = self.lists = 0
        self._last_write: dict[str, float] = {}   # key -> time of its last accepted write
        self.rejected_writes = 0                  # puts refused with 429 (production)

    def stored_bytes(self) -> int:
        """Keys and values the namespace holds now (the latest version of each key)."""
        total = 0
        for key, versions in self._versions.items():
            value = versions[-1][1]
            if value is not None:
                total += len(key.encode()) + len(value.encode() if isinstance(value, str) else value)
        return total

    def _io(self, value: Any = None) -> Future:
        return io_later(self.runtime.clock, draw_latency(self.latency), value)

    def _key(self, key: object, op: str) -> str:
        if not isinstance(key, str) or not key:
            raise LimitError(f"{self.binding}.{op}: key {key!r} is not allowed; allowed: a non-empty str")
        if len(key.encode()) > MAX_KEY_BYTES:
            raise LimitError(f"{self.binding}.{op}: key of {len(key.encode())} bytes is not allowed; "
                             f"allowed: at most {MAX_KEY_BYTES} bytes")
        if key in (".", ".."):
            raise LimitError(f"{self.binding}.{op}: key {key!r} is not allowed")
        return key

    def _current(self, key: str) -> tuple | None:
        now = self.runtime.clock.now
        for version in reversed(self._versions.get(key, ())):
            if version[0] <= now:
                if version[1] is None or (version[2] is not None and version[2] <= now):
                    return None
                return version
        return None

    def get(self, key: str, type: str = "text") -> Future:
        """``await env.KV.get("k")`` -> str/bytes or None; ``type="json"`` parses it."""
        self._key(key, "get")
        if type not in ("text", "json", "bytes"):
            raise LimitError(f"{self.binding}.get: type={type!r} is not allowed; allowed: 'text', 'json', 'bytes'")
        self.reads += 1
        version = self._current(key)
        value = None if version is None else version[1]
        if value is not None and type == "json":
            value = json.loads(value)
        return self._io(value)

    def get_with_metadata(self, key: str, type: str = "text") -> Future:
        self._key(key, "get_with_metadata")
        self.reads += 1
        version = self._current(key)
        if version is None:
            return self._io({"value": None, "metadata": None})
        value = json.loads(version[1]) if type == "json" else version[1]
        return self._io({"value": value, "metadata": version[3]})

    def put(self, key: str, value: str | bytes, *, expiration: float | None = None,
            expiration_ttl: float | None = None, metadata: Any = None) -> Future:
        """Write a value; ``expiration_ttl`` (>= 60 s) or absolute ``expiration`` (>= now + 60)."""
        self._key(key, "put")
        if not isinstance(value, (str, bytes)):
            raise LimitError(f"{self.binding}.put: value of type {type(value).__name__} is not allowed; "
                             "allowed: str or bytes (use json.dumps for objects)")
        size = len(value.encode()) if isinstance(value, str) else len(value)
        if size > MAX_VALUE_BYTES:
            raise LimitError(f"{self.binding}.put: value of {size} bytes is not allowed; allowed: at "
                             f"most {MAX_VALUE_BYTES} bytes (25 MiB)")
        now = self.runtime.clock.now
        expires = None
        if expiration_ttl is not None:
            if isinstance(expiration_ttl, bool) or not isinstance(expiration_ttl, (int, float)) \
                    or expiration_ttl < MIN_TTL:
                raise LimitError(f"{self.binding}.put: expiration_ttl={expiration_ttl!r} is not allowed; "
                                 f"allowed: at least {MIN_TTL} seconds")
            expires = now + expiration_ttl
        if expiration is not None:
            if isinstance(expiration, bool) or not isinstance(expiration, (int, float)) \
                    or expiration < now + MIN_TTL:
                raise LimitError(f"{self.binding}.put: expiration={expiration!r} is not allowed; "
                                 f"allowed: a time at least {MIN_TTL} seconds from now ({now + MIN_TTL:g})")
            expires = expiration
        if metadata is not None and len(json.dumps(metadata).encode()) > MAX_METADATA_BYTES:
            raise LimitError(f"{self.binding}.put: metadata is over {MAX_METADATA_BYTES} bytes serialised")
        refused = self._rate_limit(key, now)
        if refused is not None:      # the put's promise rejects, as in Workers
            self.rejected_writes += 1
            future = IoFuture()
            self.runtime.clock.call_later(draw_latency(self.latency), future.set_exception, refused)
            return future
        self.record_put(key, value, now, expires, metadata, limited=False)
        return self._io()

    def record_put(self, key: str, value: str | bytes, now: float, expires: float | None = None,
                   metadata: Any = None, limited: bool = True) -> None:
        """What an accepted put changes (its latency aside): the new version, the write
        count and, with ``limited`` (the write rate was not checked by ``put``), the key's last
        write time (a compiled run's writes, which it checked against the rate itself)."""
        if limited and self.runtime.semantics.kv_key_writes_per_second is not None:
            self._last_write[key] = now
        self.writes += 1
        self._versions.setdefault(key, []).append((now + self.propagation_delay, value, expires, metadata))

    def _rate_limit(self, key: str, now: float) -> LimitError | None:
        """kv/platform/limits/: "1 write per second" to the same key; faster writes get 429."""
        rate = self.runtime.semantics.kv_key_writes_per_second
        if rate is None:
            return None
        last = self._last_write.get(key)
        if last is not None and now - last < 1.0 / rate:
            return put_rate_error(self.binding, key, now - last, rate)
        self._last_write[key] = now
        return None

    def delete(self, key: str) -> Future:
        self._key(key, "delete")
        self.deletes += 1
        now = self.runtime.clock.now
        self._versions.setdefault(key, []).append((now + self.propagation_delay, None, None, None))
        return self._io()

    def list(self, *, prefix: str | None = None, limit: int = 1000, cursor: str | None = None) -> Future:
        """``{"keys": [{"name", "expiration", "metadata"}], "list_complete", "cursor"}``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise LimitError(f"{self.binding}.list: limit={limit!r} is not allowed; allowed: an integer from 1 to 1000")
        self.lists += 1
        names = sorted(k for k in self._versions
                       if (prefix is None or k.startswith(prefix)) and self._current(k) is not None)
        start = int(cursor) if cursor else 0
        page = names[start:start + limit]
        done = start + limit >= len(names)
        keys = []
        for name in page:
            version = self._current(name)
            keys.append({"name": name, "expiration": version[2], "metadata": version[3]})
        return self._io({"keys": keys, "list_complete": done, "cursor": None if done else str(start + limit)})

    def __repr__(self) -> str:
        return f"<KVNamespace {self.binding} keys={len(self._versions)}>"
