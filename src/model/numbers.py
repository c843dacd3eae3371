"""Numbers that clients send as text (query strings, paths): parsed only when short enough. No
client string reaches int() unbounded: CPython refuses over 4,300 digits with a ValueError, and
the digits before that cost quadratic time."""

MAX_DIGITS = 19  # every number jobcast keeps (seq, rank, ids) is below 2**63


def parse_natural(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """`text` as a non-negative integer when it is 1 to `max_digits` ASCII digits; else None."""
    if not 0 < len(text) <= max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
