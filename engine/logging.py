"""Structured JSON logs on stderr, with the run bound to each line and secrets redacted.

A processor replaces the value of any key that looks like a secret (password, secret, token,
authorization, private_key, ...) and any occurrence of a value registered with
:func:`register_secret`, wherever it appears in the event, before it is rendered.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"pass(word|phrase)?|secret|token|authori[sz]ation|private_?key|api_?key|cookie", re.I
)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Redact ``value`` wherever it appears in a log line from now on (values under 4 characters are
    ignored: they would redact ordinary words)."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact_text(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _redact(value: Any, key: str | None = None) -> Any:
    if key is not None and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact secret keys and registered secret values."""
    for key in list(event_dict):
        event_dict[key] = _redact(event_dict[key], key if key != "event" else None)
    return event_dict


def _current_stderr(*_args: object) -> structlog.PrintLogger:
    """A logger on ``sys.stderr`` as it is when the line is written: a stream replaced since logging
    was configured (and perhaps closed) must not turn every later log call into an error."""
    return structlog.PrintLogger(sys.stderr)


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines to ``stream`` (stderr by default) at ``level``."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_processor,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream) if stream else _current_stderr,
        cache_logger_on_first_use=False,
    )
    global _cached
    _cached = None


_cached: Any = None


def log() -> Any:
    """The engine's logger, bound once per configuration (a lazy proxy re-binds on every call,
    which costs more than a transition's own bookkeeping)."""
    global _cached
    if _cached is None:
        _cached = structlog.get_logger("cucm_renew").bind()
    return _cached


def get_logger(**bound: Any) -> Any:
    """A logger with ``bound`` values. Without any, a lazy proxy that follows later
    :func:`configure_logging` calls (binding would freeze the configuration of the moment)."""
    logger = structlog.get_logger("cucm_renew")
    return logger.bind(**bound) if bound else logger
