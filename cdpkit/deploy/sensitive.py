"""Which vars are secrets: never written into a config, listed for ``wrangler secret put``.

A var is a secret when its name has a secret-like *segment* (``DB_PASS``, ``jwtSigningKey``,
``SLACK_WEBHOOK_URL``; segments, so ``MONKEY_MODE`` or ``KEYBOARD_LAYOUT`` are not), or
when its value looks like one: a URL with credentials (``user:pass@``, a token-like query
parameter, a webhook path), a JWT, a PEM block, a known key prefix (``sk_live_``, ``ghp_``,
``xoxb-``, ``AKIA``...), or a long random-looking string. Nested JSON vars are searched
key by key. A false positive costs a ``wrangler secret put``; a false negative leaks.

>>> looks_secret("DB_PASS", "hunter2"), looks_secret("LOG_LEVEL", "debug")
(True, False)
>>> looks_secret("API_URL", "https://api.example.com"), looks_secret("DATABASE_URL", "postgres://app:pw@db/app")
(False, True)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# whole segments of a name (split at _ - . and camelCase): KEY matches API_KEY, apiKey, not MONKEY
SECRET_SEGMENTS = frozenset("""
    PASS PASSWD PASSWORD PASSPHRASE PWD SECRET SECRETS TOKEN TOKENS KEY KEYS APIKEY PRIVKEY
    WEBHOOK WEBHOOKS CREDENTIAL CREDENTIALS CREDS PRIVATE AUTH AUTHORIZATION BEARER
    SIGNATURE SALT PEPPER OTP TOTP
""".split())
# query parameters that carry credentials (besides the secret segments above)
SECRET_PARAMS = frozenset({"sig", "code", "x-amz-signature", "x-amz-credential", "x-goog-signature"})
KNOWN_PREFIXES = re.compile(
    r"\b(?:sk|rk|pk)_(?:live|test)_|\bsk-(?:proj-|ant-)?[A-Za-z0-9]{16}|\bgh[pousr]_[A-Za-z0-9]{16}"
    r"|\bgithub_pat_|\bglpat-|\bxox[abposr]-|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_\-]{30}"
    r"|\bSG\.[\w-]{16,}\.[\w-]{16,}|\bnpm_[A-Za-z0-9]{30}|\bpypi-[\w-]{30}|\bshp(?:at|ss)_[0-9a-f]{16}")
JWT = re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*")
PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----")
URL = re.compile(r"^[a-z][a-z0-9+.\-]*://", re.I)
WEBHOOK_HOSTS = re.compile(r"(^|\.)(hooks\.slack\.com|discord(app)?\.com|webhook\.office\.com)$", re.I)
TOKEN_CHARS = re.compile(r"[A-Za-z0-9+/_\-.=~]+")


def segments(name: str) -> list[str]:
    """``jwtSigningKey`` -> ``['JWT', 'SIGNING', 'KEY']``; ``DB_PASS`` -> ``['DB', 'PASS']``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [s.upper() for s in re.split(r"[\s_\-.]+", spaced) if s]


def secret_name(name: str) -> bool:
    """A name with a secret-like segment (``DB_PASS``, ``SLACK_WEBHOOK_URL``; not ``MONKEY_MODE``)."""
    return any(s in SECRET_SEGMENTS for s in segments(name))


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def random_looking(text: str) -> bool:
    """A long token: 32+ token characters, or 20+ with letters and digits mixed at random."""
    if not TOKEN_CHARS.fullmatch(text):
        return False
    if len(text) >= 32:
        return True
    return (len(text) >= 20 and bool(re.search(r"\d", text)) and bool(re.search(r"[A-Za-z]", text))
            and entropy(text) >= 4.0)


def secret_url(text: str) -> bool:
    """A URL carrying credentials: userinfo, a token-like query parameter, a webhook path,
    or a random-looking path segment."""
    try:
        url = urlsplit(text)
        user, host = url.username, url.hostname or ""
    except ValueError:
        return True     # unparseable: do not risk writing it
    if user or "@" in url.netloc:
        return True
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        if secret_name(key) or key.lower() in SECRET_PARAMS or secret_value(value):
            return True
    if WEBHOOK_HOSTS.search(host):
        return True
    return any(random_looking(part) for part in url.path.split("/"))


def secret_value(value: Any) -> bool:
    """A value that looks like a credential (see the module docstring)."""
    if isinstance(value, dict):
        return any(secret_name(str(k)) or secret_value(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(secret_value(v) for v in value)
    if not isinstance(value, str):
        return False
    text = value.strip()
    if URL.match(text):
        return secret_url(text)
    return bool(KNOWN_PREFIXES.search(text) or JWT.search(text) or PEM.search(text)
                or random_looking(text))


def looks_secret(name: str, value: Any) -> bool:
    """A var that must not be written into a config file.

    >>> looks_secret("API_TOKEN", "x"), looks_secret("REGION", "eu"), looks_secret("X", "sk_live_123")
    (True, False, True)
    """
    return secret_name(name) or secret_value(value)
