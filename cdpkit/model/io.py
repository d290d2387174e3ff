"""Model files as text: read a YAML/JSON document from a path or a string, write YAML, and
check a mapping's keys with errors that name the place and the nearest valid key.
(The document's meaning is :meth:`cdpkit.Pipeline.from_dict`'s business.)

>>> load_document("name: demo\\nqueues: {jobs: {}}")
{'name': 'demo', 'queues': {'jobs': {}}}
>>> check_keys("queues.jobs", {"max_batch_sise": 5}, ("max_batch_size", "consumer"), what="setting")
Traceback (most recent call last):
...
cdpkit.errors.ConfigError: queues.jobs: unknown setting 'max_batch_sise' (did you mean 'max_batch_size'?); allowed: max_batch_size, consumer
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

FILE_SUFFIXES = (".yaml", ".yml", ".json")


def check_keys(where: str, value: Any, allowed: tuple[str, ...], what: str = "field") -> dict:
    """``value`` as a mapping whose keys are all in ``allowed`` (None reads as empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r:.60}")
    for key in value:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{where}: unknown {what} {key!r}{hint}; allowed: {', '.join(allowed)}")
    return value


def load_document(path_or_text: str | Path) -> Any:
    """The data of a YAML or JSON model file, given its path, or YAML text.

    A one-line string that names a file is read as that file; one that looks like a path
    (it ends in a file suffix or holds a ``/``) but names no file is an error, not YAML text.
    """
    text = _read(path_or_text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"model file is not valid YAML: {exc}") from None


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2)


def _read(path_or_text: str | Path) -> str:
    if isinstance(path_or_text, Path):
        path = path_or_text
    elif isinstance(path_or_text, str) and "\n" not in path_or_text and ":" not in path_or_text:
        path = Path(path_or_text)
        if not path.is_file() and not (path.suffix or "/" in path_or_text):
            return path_or_text      # a one-word YAML document
    else:
        if not isinstance(path_or_text, str):
            raise ConfigError(f"model={path_or_text!r:.60} is not allowed; allowed: a path to a "
                              "YAML/JSON model file, or YAML text")
        return path_or_text
    if not path.is_file():
        raise ConfigError(f"model file {str(path)!r} does not exist")
    if path.suffix not in FILE_SUFFIXES:
        raise ConfigError(f"model file {str(path)!r}: allowed: a YAML or JSON model file "
                          f"({', '.join(FILE_SUFFIXES)})")
    return path.read_text()
