"""Cloudflare's naming rules and numeric limits, checked once, with errors that say why.

Every check raises :class:`~cdpkit.errors.ConfigError` (configuration) or
:class:`~cdpkit.errors.LimitError` (a runtime call) whose message names the field, the
value and what is allowed.

>>> check_queue_name("cdp-command-queue")
'cdp-command-queue'
>>> check_queue_name("CDP_Queue")
Traceback (most recent call last):
...
cdpkit.errors.ConfigError: queue name 'CDP_Queue' is not allowed: use 1-63 lowercase letters, digits and dashes, starting with a letter
"""

from __future__ import annotations

import math
import re
from numbers import Integral, Real

from ..errors import CdpkitError, ConfigError, LimitError

QUEUE_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
BINDING_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

MAX_BATCH_SIZE = 100
MAX_BATCH_TIMEOUT = 60.0
MAX_RETRIES = 100
MAX_CONCURRENCY = 250
RETENTION_RANGE = (60, 14 * 86_400)  # seconds: 1 minute .. 14 days


def check_queue_name(name: object, field: str = "queue name") -> str:
    """A queue name Cloudflare accepts: 1-63 of [a-z0-9-], starting with a letter."""
    if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
        raise ConfigError(
            f"{field} {name!r} is not allowed: use 1-63 lowercase letters, digits and dashes, "
            "starting with a letter"
        )
    return name


def check_binding_name(name: object, field: str = "binding") -> str:
    """A binding name must be a JavaScript identifier (conventionally UPPER_SNAKE_CASE)."""
    if not isinstance(name, str) or not BINDING_NAME.fullmatch(name):
        raise ConfigError(
            f"{field} {name!r} is not allowed: bindings are JavaScript identifiers "
            "(letters, digits, '_' or '$', not starting with a digit), e.g. 'CDP_COMMAND_QUEUE'"
        )
    return name


# Words a generated class or method cannot be named: JavaScript's reserved words (ES2015+,
# strict mode, which class bodies are), the strict-mode-only names, and TypeScript's built-in
# type names (a class named ``string`` does not compile).
JS_RESERVED = frozenset("""
    await break case catch class const continue debugger default delete do else enum export
    extends false finally for function if import in instanceof new null return super switch
    this throw true try typeof var void while with yield let static implements interface
    package private protected public arguments eval constructor
    any bigint boolean never number object string symbol undefined unknown
""".split())


def check_js_identifier(name: object, field: str = "name") -> str:
    """A name the generated TypeScript can declare: an identifier, not a reserved word.

    >>> check_js_identifier("ScoringActor")
    'ScoringActor'
    >>> check_js_identifier("class", "actor class name")
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: actor class name='class' is not allowed; allowed: a JavaScript identifier that is not a reserved word (class, default, delete, ...)
    """
    if not isinstance(name, str) or not BINDING_NAME.fullmatch(name) or name in JS_RESERVED:
        raise ConfigError(f"{field}={name!r} is not allowed; allowed: a JavaScript identifier that "
                          "is not a reserved word (class, default, delete, ...)")
    return name


def binding_for(queue_name: str) -> str:
    """Conventional binding for a queue: ``cdp-command-queue`` -> ``CDP_COMMAND_QUEUE``."""
    return queue_name.replace("-", "_").upper()


def check_int(value: object, field: str, low: int, high: int,
              error: type[CdpkitError] = ConfigError) -> int:
    """An integer in ``low..high`` (bools are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= high:
        raise error(f"{field}={value!r} is not allowed; allowed: an integer from {low} to {high}")
    return int(value)


INT32_RANGE = (-2**31, 2**31 - 1)


def js_int(value: object, field: str) -> int:
    """A number as workerd converts a JS ``delaySeconds`` to its C++ ``int`` (jsg's
    ``tryUnwrap(int*)``): truncated toward zero (``1.9`` -> 1, ``-0.5`` -> 0), NaN and
    ±Infinity -> 0, ``True``/``False`` -> 1/0 (JS ``ToNumber``); outside the int32 range
    workerd throws a TypeError, here a :class:`~cdpkit.errors.LimitError`.

    >>> js_int(2.9, "delay_seconds"), js_int(float("nan"), "delay_seconds"), js_int(True, "x")
    (2, 0, 1)
    """
    if not isinstance(value, Real):
        raise LimitError(f"{field}={value!r} is not allowed; allowed: a number (int or float)")
    if not isinstance(value, Integral) and not math.isfinite(value):
        return 0
    low, high = INT32_RANGE
    if not low <= value <= high:
        raise LimitError(f"{field}={value!r} is not allowed; allowed: a number from {low} to {high} "
                         "(workerd: 'Value out of range')")
    return int(value)


def check_number(value: object, field: str, low: float, high: float,
                 error: type[CdpkitError] = ConfigError) -> float:
    """A real number in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not low <= value <= high:
        raise error(f"{field}={value!r} is not allowed; allowed: a number from {low:g} to {high:g}")
    return float(value)


WORKER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_worker_name(name: object, field: str = "worker name") -> str:
    """A Worker (script) name as Cloudflare accepts it: lowercase letters, digits and dashes,
    at most 63 characters, not starting or ending with a dash.

    >>> check_worker_name("cdp-gateway")
    'cdp-gateway'
    >>> check_worker_name("CDP Gateway")
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: worker name='CDP Gateway' is not allowed; allowed: lowercase letters, digits and dashes, 1 to 63 characters, not starting or ending with a dash
    """
    if not isinstance(name, str) or not WORKER_NAME.fullmatch(name):
        raise ConfigError(f"{field}={name!r} is not allowed; allowed: lowercase letters, digits and "
                          "dashes, 1 to 63 characters, not starting or ending with a dash")
    return name
