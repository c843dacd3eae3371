"""Real headless Chromium (Debian's package) driven by Playwright, for the dashboard's tests."""

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


def chromium() -> str:
    """The browser binary; a loud failure, never a skip, when it is missing."""
    if not Path(CHROMIUM).exists():
        found = shutil.which("chromium")
        if found is None:
            pytest.fail(
                f"the dashboard tests need Debian's chromium at {CHROMIUM}: "
                "run `apt-get install -y chromium` (.ci/run does it when it is missing)"
            )
        return found
    return CHROMIUM
