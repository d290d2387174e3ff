"""Semantics profiles: every behavioural difference between ``wrangler dev`` and production.

One small frozen object, consulted by the queue broker; no scattered ``if`` branches.
The two built-in profiles are :data:`LOCAL` (exactly what ``wrangler dev`` 4.86 does:
miniflare's Queues broker inside workerd) and :data:`PRODUCTION` (Cloudflare's documented
defaults and limits). Make a variant with :func:`dataclasses.replace`.

>>> PRODUCTION.default_max_batch_size, LOCAL.default_max_batch_size
(10, 5)
>>> resolve("local") is LOCAL
True
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Semantics", "LOCAL", "PRODUCTION", "resolve"]


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

PRODUCTION = Semantics(
    name="production",
    default_max_batch_size=10,
    default_max_batch_timeout=5.0,
    default_max_retries=3,
    max_delay_seconds=43_200,
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
)

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
