"""The virtual-time runtime: clock, Queues, bindings. One engine for handlers and specs."""

from .actors import Actor, ActorAborted, ActorId, persist
from .clock import Clock, Future, Task, sleep
from .env import Env, ExecutionContext
from .queues import ConsumerSettings, Message, MessageBatch, Producer, Queue
from .runtime import Runtime
from .semantics import (
    LOCAL,
    PRODUCTION,
    PRODUCTION_ALL_SLOTS,
    PRODUCTION_FREE,
    Autoscaling,
    Semantics,
)

__all__ = ["Actor", "ActorAborted", "ActorId", "persist", "Clock", "Future", "Task", "sleep", "Env", "ExecutionContext", "ConsumerSettings",
           "Message", "MessageBatch", "Producer", "Queue", "Runtime", "Semantics", "LOCAL",
           "PRODUCTION", "PRODUCTION_ALL_SLOTS", "PRODUCTION_FREE", "Autoscaling"]
