"""Errors cdpkit raises for bad input: each names the field, the value and what is allowed."""

from __future__ import annotations

__all__ = ["CdpkitError", "ConfigError", "LimitError", "HandlerError", "BudgetError",
           "HandlerWarning"]


class CdpkitError(ValueError):
    """Base class of cdpkit's input errors."""


class ConfigError(CdpkitError):
    """A configuration value (queue name, consumer setting, binding, ...) is not allowed."""


class LimitError(CdpkitError):
    """A runtime call exceeds a Cloudflare limit (message size, batch size, delay, ...)."""


class HandlerError(CdpkitError):
    """User handler code used the Workers API in a way the platform rejects."""


class BudgetError(CdpkitError):
    """A run would do, or did, more work than its :class:`~cdpkit.Budget` allows (events,
    messages, memory, or events at one virtual instant); the message says which limit,
    the figure, and what to change."""


class HandlerWarning(UserWarning):
    """A consumer handler raised: shown the first time each kind of error happens, and as a
    count at the end of a run (every one, with its traceback, is in ``rt.errors``)."""
