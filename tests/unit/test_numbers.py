"""Numbers clients send as text are parsed with a bound before int() sees them."""

import pytest

from jobcast.model.numbers import MAX_DIGITS, parse_natural
from jobcast.model.task_types import type_id_or_name


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("7", 7), ("0042", 42), ("9" * MAX_DIGITS, 10**MAX_DIGITS - 1)]
)
def test_short_ascii_digits_are_numbers(text: str, value: int) -> None:
    assert parse_natural(text) == value


@pytest.mark.parametrize(
    "text", ["", "-1", "+1", "1.5", "1e3", " 1", "1 ", "²", "٣", "1_000", "9" * (MAX_DIGITS + 1), "1" * 5000]
)
def test_anything_else_is_refused_without_reaching_int(text: str) -> None:
    assert parse_natural(text) is None


def test_a_type_ref_of_too_many_digits_is_a_name_no_type_has() -> None:
    assert type_id_or_name("12") == 12
    assert type_id_or_name("1" * 5000) == "1" * 5000
