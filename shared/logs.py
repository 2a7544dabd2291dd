"""JSON logs, one object per line, with every phone and email masked before it is written."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from shared.masking import mask_text

_STD = set(vars(logging.makeLogRecord({}))) | {"color_message", "message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON; extra fields are kept; all text passes through ``mask_text``."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        text = orjson.dumps(doc, default=str).decode()
        return mask_text(text)


def configure(service: str, level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's, FastStream's) to JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
