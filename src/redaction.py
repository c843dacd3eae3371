"""Secrets never reach a log line: tokens in query strings, Authorization values and anything
shaped like a jobcast token are masked after the message is formatted."""

import logging
import re

from src.tokens import TOKEN_PREFIX

MASK = "[redacted]"
SECRETS = re.compile(
    rf"(?P<keep>[?&]token=|bearer\s+)[^\s&\"',]+|{re.escape(TOKEN_PREFIX)}[A-Za-z0-9_-]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return SECRETS.sub(lambda match: (match.group("keep") or TOKEN_PREFIX) + MASK, text)


class RedactSecrets(logging.Filter):
    """Installed on the log handlers, so it sees every library's records too."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_logs() -> None:
    """Mask secrets on every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets())
