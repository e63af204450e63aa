"""Process logging: plain text or JSON lines, level from settings.

Call-path code logs through ``logging.getLogger("trunkline.<area>")`` and passes
structured fields in ``extra={"call_id": ...}``; the JSON formatter emits them as
keys. Nothing secret (tokens, passwords, keys) and no audio is ever logged.

At debug level the websockets library logs each handshake header; the values
of the headers that carry credentials or signatures (``Authorization``, the
``X-Signature`` family trunkline signs agent connections with, carrier stream
tokens, cookies) are replaced by ``[redacted]`` before any handler sees them.
faster-whisper logs a line per transcribed utterance at INFO; its logger is
held at WARNING unless the level is debug.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

REDACTED = "[redacted]"
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-signature",
        "x-inkbox-signature",
        "x-trunkline-signature",
        "x-twilio-signature",
        "x-telnyx-streaming-auth-token",
        "telnyx-signature-ed25519",
    }
)
CHATTY_LIBRARIES = ("faster_whisper",)  # a line per utterance at INFO

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` with extra fields appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        ]
        return f"{base} {' '.join(extras)}" if extras else base


def _sensitive(name: object) -> bool:
    text = str(name).strip().lower()
    return text in SENSITIVE_HEADERS or "signature" in text or text.endswith("-token")


class RedactHeaders(logging.Filter):
    """Hides the values of credential and signature headers in header log lines.

    The websockets library logs each handshake header as ``("> %s: %s", name,
    value)`` (``<`` for the response); aiohttp and others follow the same shape.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(record.msg, str)
            and record.msg.endswith("%s: %s")
            and _sensitive(args[0])
        ):
            record.args = (args[0], REDACTED)
        return True


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactHeaders())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    quiet = logging.NOTSET if level.upper() == "DEBUG" else logging.WARNING
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
