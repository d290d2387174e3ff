"""A fault timeline: what goes wrong, where and when, for incident rehearsal.

A :class:`Fault` names a ``kind``, a ``node`` and its windows of virtual time; a
:class:`Faults` is a list of them that ``cdp.simulate(..., faults=...)`` and
``rt.apply_faults(...)`` apply (``cdpkit/runtime/faults.py``). Kinds:

============  =====================  ====================================================
kind          node                   what happens inside each window
============  =====================  ====================================================
outage        a consumer (queue)     ``mode="throw"``: every invocation throws (a bad
                                     deploy); ``mode="pause"``: delivery paused
pause         a queue                delivery paused at the start, resumed at the end
purge         a queue                at ``at``: the queue's waiting messages are deleted
dlq_down      a dead letter queue    its consumer is down: delivery paused
errors        consumer, actor, store each attempt fails with probability ``p`` (a
                                     ``permanent`` share fails every attempt in the window)
slowdown      consumer, actor, store service time / latency times ``factor``
rate_limit    actor or store         at most ``per_second`` calls accepted per second;
                                     the rest fail (a 429) and are retried
eviction      actor                  at ``at``: every instance loses its memory
============  =====================  ====================================================

Windows: ``start`` with ``end`` or ``length``; or ``windows=[[s, e], ...]``; or a repeating
pattern ``every`` seconds, each ``length`` long, from ``start`` until ``end``. Instant kinds
(purge, eviction) take ``at`` (a time or a list). Every field is checked before anything
runs, and errors name the fault, the field, the value and what is allowed.

>>> f = Faults([{"kind": "outage", "node": "jobs.consumer", "start": 60, "length": 120}])
>>> f[0].windows
((60.0, 180.0),)
>>> Faults([{"kind": "outage", "node": "jobs.consumer", "start": -5, "end": 10}])
Traceback (most recent call last):
...
cdpkit.errors.ConfigError: fault 1 (outage of 'jobs.consumer'): start=-5 is not allowed; allowed: a time in virtual seconds >= 0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from ..errors import ConfigError
from . import io

__all__ = ["Fault", "Faults", "FAULT_KINDS"]

#: kind -> (node kinds it applies to, its own fields, whether it is an instant)
FAULT_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "outage": (("consumer",), ("mode",), False),
    "pause": (("queue",), (), False),
    "purge": (("queue",), (), True),
    "dlq_down": (("queue",), (), False),
    "errors": (("consumer", "actor", "store"), ("p", "permanent"), False),
    "slowdown": (("consumer", "actor", "store"), ("factor",), False),
    "rate_limit": (("actor", "store"), ("per_second",), False),
    "eviction": (("actor",), (), True),
}
OUTAGE_MODES = ("throw", "pause")
WINDOW_FIELDS = ("start", "end", "length", "windows", "every", "at")
FIELDS = ("kind", "node", *WINDOW_FIELDS, "mode", "p", "permanent", "factor", "per_second")
MAX_REPEATS = 100_000


def _time(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < math.inf:
        raise ConfigError(f"{where}: {name}={value!r} is not allowed; allowed: a time in virtual seconds >= 0")
    return float(value)


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` at ``node`` during ``windows`` ((start, end) pairs, sorted; an
    instant kind has start == end). Build it with :meth:`parse` (or through :class:`Faults`)
    to have every field checked.

    Examples
    --------
    >>> Fault.parse({"kind": "rate_limit", "node": "CRM", "per_second": 50, "start": 0, "end": 60},
    ...             "fault 1").per_second
    50.0
    >>> Fault.parse({"kind": "slowdown", "node": "DB", "factor": 10, "every": 100, "length": 10,
    ...              "start": 0, "end": 300}, "fault 1").windows
    ((0.0, 10.0), (100.0, 110.0), (200.0, 210.0))
    """

    kind: str
    node: str
    windows: tuple[tuple[float, float], ...]
    mode: str = "throw"
    p: float = 1.0
    permanent: float = 0.0
    factor: float = 1.0
    per_second: float = math.inf
    label: str = field(default="", compare=False)

    @property
    def instant(self) -> bool:
        """Whether the kind happens at instants (``purge``, ``eviction``: windows with start == end)."""
        return FAULT_KINDS[self.kind][2]

    def active(self, t: float) -> bool:
        """Whether virtual time ``t`` is inside one of the windows (start inclusive, end exclusive).

        Examples
        --------
        >>> f = Fault.parse({"kind": "pause", "node": "jobs", "start": 10, "end": 20}, "fault 1")
        >>> f.active(10), f.active(20)
        (True, False)
        """
        return any(s <= t < e for s, e in self.windows)

    @classmethod
    def parse(cls, data: Any, where: str) -> Fault:
        """A fault from a mapping (the YAML form), checked field by field.

        Parameters
        ----------
        data : dict or Fault
            ``{"kind", "node", <window fields>, <kind's fields>}``: window fields ``start`` with
            ``end`` or ``length``, ``windows=[[s, e], ...]``, ``every`` with ``length`` and
            ``end``, or ``at`` (a time or list, for instant kinds); the kind's own fields are
            ``mode`` (outage: ``"throw"`` or ``"pause"``), ``p`` and ``permanent`` (errors),
            ``factor`` (slowdown) and ``per_second`` (rate_limit). A Fault is returned as it is.
        where : str
            What it is, for error messages (e.g. ``"fault 3"``).

        Returns
        -------
        Fault

        Raises
        ------
        ConfigError
            Naming the fault, the field, the value and what is allowed: an unknown kind or
            field, a missing field, a negative time, overlapping windows, ...

        Examples
        --------
        >>> Fault.parse({"kind": "purge", "node": "jobs", "at": [10, 20]}, "fault 1").windows
        ((10.0, 10.0), (20.0, 20.0))
        >>> Fault.parse({"kind": "pause", "node": "jobs", "start": 0, "end": 5, "p": 0.5}, "fault 2")
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: fault 2 (pause of 'jobs'): field 'p' is not allowed for kind 'pause'; allowed: start, end, length, windows, every, at
        """
        if isinstance(data, Fault):
            return data
        data = io.check_keys(where, data, FIELDS)
        kind, node = data.get("kind"), data.get("node")
        if kind not in FAULT_KINDS:
            raise ConfigError(f"{where}: kind={kind!r} is not allowed; allowed: "
                              + ", ".join(repr(k) for k in FAULT_KINDS))
        if not isinstance(node, str) or not node:
            raise ConfigError(f"{where} ({kind}): node={node!r} is not allowed; allowed: the name of "
                              f"a {' or '.join(FAULT_KINDS[kind][0])}")
        where = f"{where} ({kind} of {node!r})"
        _, own, instant = FAULT_KINDS[kind]
        for name in ("mode", "p", "permanent", "factor", "per_second"):
            if name in data and name not in own:
                raise ConfigError(f"{where}: field {name!r} is not allowed for kind {kind!r}; allowed: "
                                  + ", ".join([*WINDOW_FIELDS, *own]))
        values: dict[str, Any] = {}
        if "mode" in data:
            if data["mode"] not in OUTAGE_MODES:
                raise ConfigError(f"{where}: mode={data['mode']!r} is not allowed; allowed: "
                                  "'throw' (every invocation throws), 'pause' (delivery paused)")
            values["mode"] = data["mode"]
        for name, low, high, allowed in (
                ("p", 0, 1, "a probability from 0 to 1"),
                ("permanent", 0, 1, "a share from 0 to 1 (of failing messages that fail every attempt)"),
                ("factor", 0, math.inf, "a number > 0 (service time multiplier)"),
                ("per_second", 0, math.inf, "a number of calls per second >= 0")):
            if name in data:
                v = data[name]
                ok = isinstance(v, Real) and not isinstance(v, bool) and low <= v <= high and math.isfinite(v)
                if not ok or (name == "factor" and v == 0):
                    raise ConfigError(f"{where}: {name}={v!r} is not allowed; allowed: {allowed}")
                values[name] = float(v)
        if kind == "rate_limit" and "per_second" not in values:
            raise ConfigError(f"{where}: missing field 'per_second'; allowed: a number of calls per second >= 0")
        if kind == "slowdown" and "factor" not in values:
            raise ConfigError(f"{where}: missing field 'factor'; allowed: a number > 0 (service time multiplier)")
        return cls(kind, node, _windows(data, where, instant), label=where, **values)

    def to_dict(self) -> dict[str, Any]:
        """Plain data :meth:`parse` reads back (windows as a list, instants as ``at``).

        Examples
        --------
        >>> Fault.parse({"kind": "errors", "node": "DB", "p": 0.2, "start": 0, "length": 30}, "f").to_dict()
        {'kind': 'errors', 'node': 'DB', 'windows': [[0.0, 30.0]], 'p': 0.2, 'permanent': 0.0}
        """
        out: dict[str, Any] = {"kind": self.kind, "node": self.node}
        if self.instant:
            out["at"] = [s for s, _ in self.windows]
        else:
            out["windows"] = [[s, e] for s, e in self.windows]
        for name in FAULT_KINDS[self.kind][1]:
            out[name] = getattr(self, name)
        return out


def _windows(data: dict, where: str, instant: bool) -> tuple[tuple[float, float], ...]:
    """The (start, end) pairs a fault's window fields describe."""
    given = [k for k in WINDOW_FIELDS if k in data]
    if instant:
        if given != ["at"]:
            raise ConfigError(f"{where}: window fields {given} are not allowed; allowed: at (a time "
                              "or a list of times)")
        at = data["at"] if isinstance(data["at"], (list, tuple)) else [data["at"]]
        if not at:
            raise ConfigError(f"{where}: at=[] is not allowed; allowed: a time or a non-empty list of times")
        return tuple(sorted((t, t) for t in (_time(v, where, "at") for v in at)))
    if "at" in data:
        raise ConfigError(f"{where}: at={data['at']!r} is not allowed; allowed: start with end or "
                          "length, windows=[[start, end], ...], or every with length")
    if "windows" in data:
        if set(given) != {"windows"}:
            raise ConfigError(f"{where}: windows with {sorted(set(given) - {'windows'})} is not allowed; "
                              "allowed: windows alone")
        raw = data["windows"]
        if not isinstance(raw, (list, tuple)) or not raw or not all(
                isinstance(w, (list, tuple)) and len(w) == 2 for w in raw):
            raise ConfigError(f"{where}: windows={raw!r} is not allowed; allowed: a non-empty list of "
                              "[start, end] pairs")
        pairs = [(_time(s, where, "start"), _time(e, where, "end")) for s, e in raw]
    else:
        if "start" not in data:
            raise ConfigError(f"{where}: missing field 'start'; allowed: start with end or length, "
                              "or windows=[[start, end], ...]")
        start = _time(data["start"], where, "start")
        length = _time(data["length"], where, "length") if "length" in data else None
        end = _time(data["end"], where, "end") if "end" in data else None
        if "every" in data:
            every = _time(data["every"], where, "every")
            if length is None or end is None or not 0 < length <= every:
                raise ConfigError(f"{where}: every={data['every']!r} is not allowed with length={length!r}, "
                                  f"end={end!r}; allowed: every > 0 with 0 < length <= every, and an end")
            count = math.ceil((end - start) / every)
            if count > MAX_REPEATS:
                raise ConfigError(f"{where}: every={every:g} repeats {count:,} times; allowed: at most "
                                  f"{MAX_REPEATS:,} windows")
            pairs = [(start + i * every, min(start + i * every + length, end)) for i in range(count)]
        elif length is not None and end is not None:
            raise ConfigError(f"{where}: both end={end:g} and length={length:g} are given; allowed: one of them")
        elif length is None and end is None:
            raise ConfigError(f"{where}: missing field 'end' (or 'length'); allowed: end > start")
        else:
            pairs = [(start, start + length if end is None else end)]
    for s, e in pairs:
        if not e > s:
            raise ConfigError(f"{where}: end={e:g} is not allowed; allowed: end > start={s:g}")
    pairs.sort()
    for (_, e1), (s2, _) in zip(pairs, pairs[1:]):
        if s2 < e1:
            raise ConfigError(f"{where}: window starting at {s2:g} overlaps the one ending at {e1:g}; "
                              "allowed: windows that do not overlap")
    return tuple(pairs)


class Faults:
    """A fault timeline: a list of :class:`Fault` (from mappings, the YAML form).

    Parameters
    ----------
    faults : iterable of dict or Fault
        Each ``{"kind", "node", <window fields>, <kind's fields>}`` (see the module doc).

    Examples
    --------
    >>> f = Faults().add("outage", "jobs.consumer", start=60, length=900, mode="pause")
    >>> f.add("rate_limit", "CRM", per_second=50, start=0, end=600)
    <Faults: outage of 'jobs.consumer' 60-960 s; rate_limit of 'CRM' 0-600 s>
    >>> Faults([{"kind": "slowdown", "node": "DB", "start": 0, "end": 10, "factor": -2}])
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: fault 1 (slowdown of 'DB'): factor=-2 is not allowed; allowed: a number > 0 (service time multiplier)
    """

    def __init__(self, faults: Iterable[Any] = ()) -> None:
        if isinstance(faults, Faults):
            faults = faults.faults
        if isinstance(faults, (str, dict)) or not isinstance(faults, Iterable):
            raise ConfigError(f"faults={faults!r:.80} is not allowed; allowed: a list of faults, each a "
                              "mapping with kind, node and its window")
        self.faults: list[Fault] = [Fault.parse(f, f"fault {i}") for i, f in enumerate(faults, 1)]

    def add(self, kind: str, node: str, **fields: Any) -> Faults:
        """Append one fault, checked now.

        Parameters
        ----------
        kind : str
            One of ``outage``, ``pause``, ``purge``, ``dlq_down``, ``errors``, ``slowdown``,
            ``rate_limit``, ``eviction``.
        node : str
            The node it strikes (a consumer ``"<queue>.consumer"``, a queue, an actor or a store).
        **fields
            Its window and the kind's own fields (see :meth:`Fault.parse`).

        Returns
        -------
        Faults
            ``self``, for chaining.

        Raises
        ------
        ConfigError
            Naming the fault and the field that is not allowed.

        Examples
        --------
        >>> Faults().add("purge", "jobs", at=30).add("eviction", "Orchestrator", at=[10, 20])
        <Faults: purge of 'jobs' 30; eviction of 'Orchestrator' 10, 20>
        """
        self.faults.append(Fault.parse({"kind": kind, "node": node, **fields}, f"fault {len(self.faults) + 1}"))
        return self

    @classmethod
    def from_yaml(cls, path_or_text: Any) -> Faults:
        r"""A timeline from a YAML/JSON file or text: a list of faults, or ``{faults: [...]}``.

        Parameters
        ----------
        path_or_text : str or path
            A file's path, or the document itself.

        Returns
        -------
        Faults

        Raises
        ------
        ConfigError
            For a malformed document or fault.

        Examples
        --------
        >>> Faults.from_yaml("faults:\n- {kind: outage, node: jobs.consumer, start: 0, end: 5}")
        <Faults: outage of 'jobs.consumer' 0-5 s>
        """
        data = io.load_document(path_or_text)
        if isinstance(data, dict):
            data = io.check_keys("faults file", data, ("faults",)).get("faults") or []
        return cls(data)

    def to_list(self) -> list[dict[str, Any]]:
        """The faults as plain data (what :class:`Faults` and YAML read back).

        Examples
        --------
        >>> Faults().add("purge", "jobs", at=[10, 20]).to_list()
        [{'kind': 'purge', 'node': 'jobs', 'at': [10.0, 20.0]}]
        """
        return [f.to_dict() for f in self.faults]

    def check(self, nodes: dict[str, str], duration: float | None = None,
              dead_letter_queues: Iterable[str] = ()) -> None:
        """Check every fault against the nodes it may name and the run's duration.

        Parameters
        ----------
        nodes : dict
            ``{name: kind}`` of the pipeline's (or runtime's) nodes: ``"queue"``,
            ``"consumer"``, ``"actor"``, ``"store"``.
        duration : float, optional
            The run's length; every fault's windows must start before it.
        dead_letter_queues : iterable of str
            The queues ``dlq_down`` may name.

        Raises
        ------
        ConfigError
            Naming the fault, the node and the nodes that would be allowed.

        Examples
        --------
        >>> f = Faults().add("outage", "jobs", start=0, end=10)
        >>> f.check({"jobs": "queue", "jobs.consumer": "consumer"})
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: fault 1 (outage of 'jobs'): node='jobs' is not allowed (it is a queue); allowed: a consumer: jobs.consumer
        """
        dlqs = set(dead_letter_queues)
        for f in self.faults:
            want = FAULT_KINDS[f.kind][0]
            kind = nodes.get(f.node)
            if kind not in want:
                names = sorted(n for n, k in nodes.items() if k in want)
                what = "no such node" if kind is None else f"it is a {kind}"
                raise ConfigError(f"{f.label}: node={f.node!r} is not allowed ({what}); allowed: a "
                                  f"{' or '.join(want)}: {', '.join(names) or '(none)'}")
            if f.kind == "dlq_down" and f.node not in dlqs:
                raise ConfigError(f"{f.label}: node={f.node!r} is not allowed (no queue dead-letters to it); "
                                  f"allowed: a dead letter queue: {', '.join(sorted(dlqs)) or '(none)'}")
            if duration is not None:
                start = f.windows[-1][0]
                if start >= duration:
                    field_name = "at" if f.instant else "start"
                    raise ConfigError(f"{f.label}: {field_name}={start:g} is not allowed (after the run); "
                                      f"allowed: a time from 0 to below duration={duration:g}")

    def __iter__(self) -> Iterator[Fault]:
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def __getitem__(self, i: int) -> Fault:
        return self.faults[i]

    def __bool__(self) -> bool:
        return bool(self.faults)

    def __repr__(self) -> str:
        parts = []
        for f in self.faults:
            spans = ", ".join(f"{s:g}" if s == e else f"{s:g}-{e:g}" for s, e in f.windows[:3])
            more = f" (+{len(f.windows) - 3})" if len(f.windows) > 3 else ""
            parts.append(f"{f.kind} of {f.node!r} {spans}{'' if f.instant else ' s'}{more}")
        return f"<Faults: {'; '.join(parts) or 'none'}>"


def as_faults(value: Any) -> Faults | None:
    """``None``, a :class:`Faults`, a list of faults or a YAML path/text, as Faults (None: none).

    Examples
    --------
    >>> as_faults([{"kind": "pause", "node": "jobs", "start": 0, "end": 5}])
    <Faults: pause of 'jobs' 0-5 s>
    >>> as_faults(None) is None
    True
    """
    if value is None or isinstance(value, Faults):
        return value
    if isinstance(value, str):
        return Faults.from_yaml(value)
    return Faults(value)
