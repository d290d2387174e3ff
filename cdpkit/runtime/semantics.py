"""Semantics profiles: every behavioural difference between ``wrangler dev`` and production.

One small frozen object, consulted by the queue broker; no scattered ``if`` branches.
The two built-in profiles are :data:`LOCAL` (exactly what ``wrangler dev`` 4.86 does:
miniflare's Queues broker inside workerd) and :data:`PRODUCTION` (Cloudflare's documented
defaults and limits). Make a variant with :func:`dataclasses.replace`.

>>> PRODUCTION.default_max_batch_size, LOCAL.default_max_batch_size
(10, 5)
>>> resolve("local") is LOCAL
True
>>> PRODUCTION.autoscaling.start, PRODUCTION_ALL_SLOTS.autoscaling is None
(1, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import ConfigError

__all__ = ["Semantics", "Autoscaling", "LOCAL", "PRODUCTION", "PRODUCTION_ALL_SLOTS",
           "PRODUCTION_FREE", "PLANS", "DOCS", "resolve"]

DOCS = "shared/reference/cloudflare-semantics.md"
PLANS = ("paid", "free")


@dataclass(frozen=True)
class Autoscaling:
    """How a production queue decides how many consumers may run (ASSUMPTION: every number).

    Cloudflare documents the inputs, not the rule (``consumer-concurrency/``): "After
    processing a batch of messages, Queues will check to see if the number of concurrent
    consumers should be adjusted", from "the number of messages in the queue (backlog) and
    its rate of growth", "the ratio of failed (versus successful) invocations" and
    ``max_concurrency``; it "will not autoscale while a batch is being processed"; and
    ``retry()``/``retryAll()`` are not failures. Thresholds, steps and timing are not
    published, so this rule is ours, with parameters:

    after each batch, ``need = (rate + backlog / drain_seconds) * seconds_per_message
    * (1 - failed_share)``, rounded up, between 1 and ``max_concurrency``; the level moves
    towards it by at most ``step_up`` / ``step_down``. ``rate`` is the messages landing per
    second (a time-weighted average over ``rate_window`` s: the backlog's growth),
    ``seconds_per_message`` a batch's duration over its size and ``failed_share`` the share
    of failed invocations (handler exceptions), both averaged over ``memory`` batches.
    Defaults reproduce the docs' worked example (100 msg/s, 5 s per 100-message batch:
    "a steady-state of (approximately) five (5)" consumers).
    """

    start: int = 1                 # consumers when a queue starts
    step_up: int = 1               # at most this many more after one batch
    step_down: int = 1             # at most this many fewer after one batch
    rate_window: float = 10.0      # seconds: time constant of the inflow rate estimate
    drain_seconds: float = 30.0    # a backlog is to be drained within this time
    memory: int = 10               # batches averaged for service time and failed share

    def __post_init__(self) -> None:
        for name in ("start", "step_up", "step_down", "memory"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Autoscaling: {name}={value!r} is not allowed; allowed: an int >= 1")
        for name in ("rate_window", "drain_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"Autoscaling: {name}={value!r} is not allowed; allowed: a number of "
                                  "seconds > 0")


@dataclass(frozen=True)
class Semantics:
    """How queues behave. Every field is a documented difference between the profiles."""

    name: str
    # consumer defaults (wrangler.toml keys left unset)
    default_max_batch_size: int
    default_max_batch_timeout: float
    default_max_retries: int
    # producer / retry delays: integer seconds in 0..max_delay_seconds
    max_delay_seconds: int
    # size limits (bytes; Cloudflare's "KB" is 1000 bytes in the local broker)
    max_message_bytes: int
    max_batch_messages: int
    max_batch_bytes: int
    # True: an explicit message.ack() survives a handler exception or retry_all()
    # (production docs). False: the whole batch is retried, acks included (local broker).
    acks_survive_batch_retry: bool
    # True: messages sent to a queue without a consumer are discarded (local broker).
    # False: they wait in the queue until retention expires (production).
    discard_without_consumer: bool
    # False: miniflare's single pending flush per queue (max_concurrency ignored).
    # True: up to max_concurrency batches of one queue run at once (production).
    concurrent_consumers: bool
    default_max_concurrency: int
    # Message retention in seconds (None = forever, i.e. not modelled)
    default_retention_seconds: float | None
    # Durable Objects: idle seconds before an object's instance is evicted (None = never;
    # wrangler dev keeps objects; use rt.evict() or ctx.abort() to drop memory on purpose)
    actor_idle_eviction: float | None
    # Failed alarms are retried after 2, 4, 8 ... s, each stretched by a random 0..jitter
    # fraction (workerd's RETRY_JITTER_FACTOR = 0.25; seeded here). 0 = exact backoff.
    alarm_retry_jitter: float
    # -- production only (None = not enforced, as under wrangler dev) ------------------
    # Consumer autoscaling policy; None = every max_concurrency slot from the first second.
    autoscaling: Autoscaling | None = None
    # "paid" or "free" (Workers plan): the Free plan fixes retention at 24 h.
    plan: str = "paid"
    # Platform limits (limits pages; see README "local vs production").
    queue_messages_per_second: float | None = None    # per queue; send throws above it
    queue_rate_window: float = 1.0                     # ASSUMPTION: window the rate is counted in
    queue_backlog_bytes: float | None = None          # per queue; send fails above it
    actor_requests_per_second: float | None = None    # soft limit per Durable Object
    actor_max_queue_seconds: float = 1.0               # ASSUMPTION: queued this long -> overloaded
    kv_key_writes_per_second: float | None = None     # writes to one KV key
    consumer_wall_seconds: float | None = None        # one consumer invocation's wall time
    consumer_cpu_seconds: float | None = None         # ... and CPU time (default limit)
    warn_at: float = 0.8                               # share of a limit that is reported

    def __post_init__(self) -> None:
        if self.plan not in PLANS:
            raise ConfigError(f"Semantics: plan={self.plan!r} is not allowed; allowed: 'paid', 'free'")
        if self.autoscaling is not None and not isinstance(self.autoscaling, Autoscaling):
            raise ConfigError(f"Semantics: autoscaling={self.autoscaling!r} is not allowed; allowed: "
                              "a cdpkit.Autoscaling or None")

    def retention_for(self, given: float | None, where: str) -> float | None:
        """A queue's retention: the given one, or the profile's default; on the Free plan
        "fixed at 24 h" (queues/platform/limits/), so another value is refused."""
        if self.plan == "free":
            if given is not None and given != FREE_RETENTION:
                raise ConfigError(f"{where}: retention={given:g} is not allowed on the Free plan; "
                                  f"allowed: {FREE_RETENTION} (fixed at 24 h on the Free plan)")
            return float(FREE_RETENTION)
        return self.default_retention_seconds if given is None else given


LOCAL = Semantics(
    name="local",
    default_max_batch_size=5,
    default_max_batch_timeout=1.0,
    default_max_retries=2,
    max_delay_seconds=86_400,
    max_message_bytes=128_000,
    max_batch_messages=100,
    max_batch_bytes=288_000,
    acks_survive_batch_retry=False,
    discard_without_consumer=True,
    concurrent_consumers=False,
    default_max_concurrency=1,
    default_retention_seconds=None,
    actor_idle_eviction=None,
    alarm_retry_jitter=0.25,
)

FREE_RETENTION = 86_400

PRODUCTION = Semantics(
    name="production",
    default_max_batch_size=10,
    default_max_batch_timeout=5.0,
    default_max_retries=3,
    max_delay_seconds=86_400,     # "delaySeconds up to 24 h" (raised from 12 h in Feb 2026)
    max_message_bytes=128_000,
    max_batch_messages=100,
    max_batch_bytes=256_000,
    acks_survive_batch_retry=True,
    discard_without_consumer=False,
    concurrent_consumers=True,
    default_max_concurrency=250,
    default_retention_seconds=4 * 86_400.0,
    actor_idle_eviction=70.0,
    alarm_retry_jitter=0.25,
    # "Queues will check to see if the number of concurrent consumers should be adjusted"
    autoscaling=Autoscaling(),
    # queues/platform/limits/: "5,000 messages per second" per queue ("Too Many Requests")
    queue_messages_per_second=5_000,
    # queues/platform/limits/: "25 GB" backlog per queue ("Storage Limit Exceeded")
    queue_backlog_bytes=25e9,
    # durable-objects/platform/limits/: "soft limit of 1,000 requests per second" per object
    actor_requests_per_second=1_000,
    # kv/platform/limits/: "1 write per second" to the same key (429 above it)
    kv_key_writes_per_second=1,
    # queues/platform/limits/: consumer "wall time 15 minutes", "CPU time 30 seconds" default
    consumer_wall_seconds=900,
    consumer_cpu_seconds=30,
)

#: Production with every ``max_concurrency`` slot available from the first second (no
#: autoscaling): cdpkit's former production profile, kept for comparison.
PRODUCTION_ALL_SLOTS = replace(PRODUCTION, autoscaling=None)
#: Production on the Workers Free plan: retention fixed at 24 h.
PRODUCTION_FREE = replace(PRODUCTION, plan="free")

PROFILES = {"local": LOCAL, "production": PRODUCTION}


def resolve(semantics: str | Semantics) -> Semantics:
    """Return the profile for a name ('local' or 'production') or a Semantics instance."""
    if isinstance(semantics, Semantics):
        return semantics
    try:
        return PROFILES[semantics]
    except (KeyError, TypeError):
        raise ConfigError(
            f"semantics={semantics!r} is not a profile; allowed: 'local', 'production' "
            "or a cdpkit.Semantics instance"
        ) from None
