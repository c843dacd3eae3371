"""Settings come from JOBCAST_* variables; a wrong one is a clear error at start, not later."""

import pytest

from jobcast.settings import Settings, SettingsError


def test_defaults_without_variables() -> None:
    settings = Settings.from_env({"PATH": "/usr/bin"})
    assert (settings.port, settings.cancel_grace_s, settings.redis_url) == (8000, 5.0, None)


def test_values_are_converted_from_strings() -> None:
    settings = Settings.from_env({"JOBCAST_PORT": "9000", "JOBCAST_PROGRESS_HZ": "2.5"})
    assert (settings.port, settings.progress_hz) == (9000, 2.5)


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"JOBCAST_PROT": "1"}, "JOBCAST_PROT is not a jobcast setting"),
        ({"JOBCAST_PORT": "eighty"}, "JOBCAST_PORT: Expected `int`"),
        ({"JOBCAST_PORT": "70000"}, "JOBCAST_PORT: Expected `int` <= 65535"),
        ({"JOBCAST_CANCEL_GRACE_S": "0"}, "JOBCAST_CANCEL_GRACE_S: Expected `float` > 0"),
        ({"JOBCAST_LOG_LEVEL": "loud"}, "JOBCAST_LOG_LEVEL"),
    ],
)
def test_a_bad_variable_is_named_in_the_error(environ: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(environ)
