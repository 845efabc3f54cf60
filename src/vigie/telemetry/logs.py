"""Process logs as text or JSON lines, in one schema shared with the security events.

`log_format: text|json` and `log_level: debug|info|warning|error` in vigie.yaml.
Every JSON line, log or security event, carries the envelope `ts` (RFC 3339 UTC,
milliseconds), `kind` (`log` or `security_event`), `level`, `logger`, `service`
and `version`; a log adds `message`, `error_type` when an exception was logged,
and `trace_id`/`span_id` inside a traced request. The schema is log-schema.json,
next to this module (docs/deployment.md, "Logs and security events").

No personal data: messages are written by Vigie's code, which never formats a
NIR, a name, a token or a body into one, and an exception is reduced to its type
name in both formats (a library's message or traceback may quote a value).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from opentelemetry import trace

from vigie import __version__

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
SERVICE = "vigie"
# Client libraries log request URLs at INFO: paths carry patient ids, queries names.
QUIET_LOGGERS = ("httpx", "httpcore", "aiohttp.access", "uvicorn.access")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def timestamp(seconds: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds, the `ts` of every JSON line Vigie writes."""
    moment = datetime.now(UTC) if seconds is None else datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(kind: str, level: str, logger: str, seconds: float | None = None) -> dict[str, Any]:
    """The fields every JSON log line and security event starts with."""
    return {"ts": timestamp(seconds), "kind": kind, "level": level, "logger": logger,
            "service": SERVICE, "version": __version__}


def _error_type(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return record.exc_info[0].__name__
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per record, in the shared envelope; exceptions by type only."""

    def format(self, record: logging.LogRecord) -> str:
        line = envelope("log", record.levelname.lower(), record.name, record.created)
        line["message"] = record.getMessage()
        error_type = _error_type(record)
        if error_type is not None:
            line["error_type"] = error_type
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = f"{context.trace_id:032x}"
            line["span_id"] = f"{context.span_id:016x}"
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    """The human format; an exception is named by its type, never traced back."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        error_type = _error_type(record)
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            text = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        return text if error_type is None else f"{text} [{error_type}]"


def configure(log_format: str = "text", level: str = "info",
              stream: TextIO | None = None) -> logging.Handler:
    """Route every logger to one stderr handler in the chosen format and level."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # uvicorn's own loggers propagate to the root handler, in the same format.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    return handler
