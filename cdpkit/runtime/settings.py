"""Every queue setting, once: name, type, range, default per profile, unit, labels, wrangler key
and the documentation it follows.

The runtime (``rt.queue``, :class:`~cdpkit.runtime.queues.ConsumerSettings`), the model
(``Pipeline.add_queue``/``set``, YAML), the export and import (``wrangler.toml``), sweeps, the
explorer and the plots all read :data:`QUEUE_SETTINGS`; no other module names a setting.

>>> QUEUE_SETTINGS["max_batch_size"].check(100, "queue 'jobs'")
100
>>> QUEUE_SETTINGS["max_batch_size"].check(101, "queue 'jobs'")
Traceback (most recent call last):
...
cdpkit.errors.ConfigError: queue 'jobs': max_batch_size=101 is not allowed; allowed: an integer from 1 to 100 (messages)
>>> [s.name for s in settings_in("consumer")][:3]
['max_batch_size', 'max_batch_timeout', 'max_retries']
>>> QUEUE_SETTINGS["max_batch_timeout"].default_for(LOCAL), QUEUE_SETTINGS["max_batch_timeout"].default_for(PRODUCTION)
(1.0, 5.0)
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from ..errors import ConfigError
from .limits import check_queue_name
from .semantics import LOCAL, PRODUCTION, Semantics

__all__ = ["Setting", "QUEUE_SETTINGS", "settings_in", "check_setting_names", "LOCAL", "PRODUCTION"]

DOCS = "shared/reference/cloudflare-semantics.md"


@dataclass(frozen=True)
class Setting:
    """One queue setting.

    ``high`` is a number or the name of a :class:`Semantics` field (a limit that differs per
    profile); ``default`` names the :class:`Semantics` field holding the profile's default
    (``None``: unset means "none"). ``scope`` says where it lives in ``wrangler.toml``:
    ``"consumer"`` (``[[queues.consumers]]``), ``"producer"`` (``[[queues.producers]]``) or
    ``"queue"`` (the queue itself, set when it is created).
    """

    name: str
    kind: str                      # "int", "number" or "queue" (a queue name)
    scope: str
    low: float | None = None
    high: float | str | None = None
    default: str | float | None = None
    unit: str = ""
    label: str = ""                # for widgets and legends
    short: str = ""                # for plot labels ("batch=100, timeout=1")
    doc: str = ""                  # the documentation line this follows
    pull_flag: str = ""            # its `wrangler queues consumer http add` option ("": none)
    pull_divisor: float = 1        # the option's unit: the value divided by this

    def high_for(self, semantics: Semantics) -> float | None:
        return getattr(semantics, self.high) if isinstance(self.high, str) else self.high

    def default_for(self, semantics: Semantics) -> Any:
        """The profile's value when the setting is left unset."""
        return getattr(semantics, self.default) if isinstance(self.default, str) else self.default

    def allowed(self, semantics: Semantics = PRODUCTION) -> str:
        if self.kind == "queue":
            return "the name of another queue"
        high = self.high_for(semantics)
        what = "an integer" if self.kind == "int" else "a number"
        unit = f" ({self.unit})" if self.unit else ""
        return f"{what} from {self.low:g} to {high:g}{unit}"

    def check(self, value: Any, where: str, semantics: Semantics = PRODUCTION) -> Any:
        """``value`` as the runtime uses it, or ConfigError naming ``where``, the setting, the
        value and what is allowed. Numpy numbers are accepted as the plain numbers they hold."""
        if self.kind == "queue":
            return check_queue_name(value, f"{where}: {self.name}")
        ok = not isinstance(value, bool) and isinstance(value, Integral if self.kind == "int" else Real)
        if ok and self.kind == "number":
            ok = math.isfinite(value)
        if not ok or not self.low <= value <= self.high_for(semantics):
            raise ConfigError(f"{where}: {self.name}={value!r} is not allowed; allowed: "
                              f"{self.allowed(semantics)}")
        return int(value) if self.kind == "int" else float(value)


_QUEUES = DOCS + " §1 (developers.cloudflare.com/queues/platform/limits/)"
_BATCHING = DOCS + " §1 (developers.cloudflare.com/queues/configuration/batching-retries/)"

QUEUE_SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("max_batch_size", "int", "consumer", 1, 100, "default_max_batch_size", "messages",
            "batch size", "batch", _BATCHING + ": default 10, max 100", pull_flag="--batch-size"),
    Setting("max_batch_timeout", "number", "consumer", 0, 60, "default_max_batch_timeout", "s",
            "batch timeout (s)", "timeout", _BATCHING + ": default 5 s, max 60 s"),
    Setting("max_retries", "int", "consumer", 0, 100, "default_max_retries", "retries",
            "max retries", "retries", _BATCHING + ": default 3, max 100", pull_flag="--message-retries"),
    Setting("dead_letter_queue", "queue", "consumer", label="dead-letter queue", short="DLQ",
            doc=DOCS + " §3 (developers.cloudflare.com/queues/configuration/dead-letter-queues/)",
            pull_flag="--dead-letter-queue"),
    Setting("retry_delay", "int", "consumer", 0, "max_delay_seconds", 0, "s",
            "retry delay (s)", "retry delay", _BATCHING + ": default 0 s; delays are whole seconds",
            pull_flag="--retry-delay-secs"),
    Setting("max_concurrency", "int", "consumer", 1, 250, "default_max_concurrency", "consumers",
            "max concurrency", "concurrency",
            DOCS + " §3 (developers.cloudflare.com/queues/configuration/consumer-concurrency/): 1-250"),
    Setting("visibility_timeout_ms", "int", "consumer", 1, 43_200_000, 30_000, "ms",
            "visibility timeout (ms)", "visibility",
            DOCS + " §3 (developers.cloudflare.com/queues/configuration/pull-consumers/): pull "
            "consumers only; limits page: visibilityTimeout up to 12 hours; default 30 s "
            "(assumption: not in the reference)", pull_flag="--visibility-timeout-secs", pull_divisor=1000),
    Setting("delivery_delay", "int", "producer", 0, "max_delay_seconds", 0, "s",
            "delivery delay (s)", "delivery delay", _BATCHING + ": delaySeconds, whole seconds"),
    Setting("retention", "number", "queue", 60, 14 * 86_400, "default_retention_seconds", "s",
            "retention (s)", "retention", _QUEUES + ": default 4 days, 60 s to 14 days"),
)}


def settings_in(scope: str) -> list[Setting]:
    """The settings of one ``scope`` (``"consumer"``, ``"producer"``, ``"queue"``), in table order."""
    return [s for s in QUEUE_SETTINGS.values() if s.scope == scope]


def check_setting_names(names: Any, where: str, allowed: Any = None) -> None:
    """Raise ConfigError for the first name that is not a setting, suggesting the nearest one.

    >>> check_setting_names(["max_batch_sise"], "queue 'jobs'")
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: queue 'jobs': unknown setting 'max_batch_sise' (did you mean 'max_batch_size'?); allowed: max_batch_size, max_batch_timeout, max_retries, dead_letter_queue, retry_delay, max_concurrency, visibility_timeout_ms, delivery_delay, retention
    """
    allowed = list(QUEUE_SETTINGS if allowed is None else allowed)
    for name in names:
        if name not in allowed:
            near = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{where}: unknown setting {name!r}{hint}; allowed: {', '.join(allowed)}")
