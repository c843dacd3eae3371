"""Secrets never reach a log line: tokens in query strings, Authorization values and anything
shaped like a jobcast token are masked in every record as it is made, so no handler or
formatter configured later (uvicorn's, Litestar's) can write them out."""

import logging
import re
from typing import Any

from jobcast.store.tokens import TOKEN_PREFIX

MASK = "[redacted]"
SECRETS = re.compile(
    rf"(?P<keep>[?&]token=|bearer\s+)[^\s&\"',]+|{re.escape(TOKEN_PREFIX)}[A-Za-z0-9_-]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return SECRETS.sub(lambda match: (match.group("keep") or TOKEN_PREFIX) + MASK, text)


def redact_logs() -> None:
    """From now on, every log record of this process is made with its secrets masked."""
    make_record = logging.getLogRecordFactory()

    def make_redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(make_redacted_record)
