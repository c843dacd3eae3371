"""Every bench script still runs: each, in quick mode, prints one JSON line with its figures.
Nothing here asserts speed; `python -m bench` measures it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow

EXPECTED = {
    "throughput": {"count", "jobcast", "arq_defaults", "arq_max_jobs_100", "arq_max_jobs_100_poll_50ms"},
    "commands": {"count", "jobcast", "arq_max_jobs_100_poll_50ms"},
    "pickup": {"rate_per_s", "jobcast", "arq_defaults", "arq_poll_50ms"},
    "submit": {"connections", "jobcast", "bare_litestar"},
    "events": {"rate_hz", "jobcast_1", "channels_1", "jobcast_5", "channels_5"},
    "fanout": {
        f"{name}_{server}"
        for name in ("own_task", "busy_1000", "busy_5000", "storm")
        for server in ("jobcast", "channels")
    },
    "time_to_know": {"push", "poll_2s"},
}
SCRIPT_TIMEOUT_S = 100


def run(*arguments: str, timeout_s: float = SCRIPT_TIMEOUT_S) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.timeout(SCRIPT_TIMEOUT_S + 20)
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_each_script_prints_one_json_line_of_its_figures(script: str) -> None:
    lines = run(f"bench.{script}", "--quick").strip().splitlines()
    assert len(lines) == 1, lines
    figures = json.loads(lines[0])
    assert set(figures) == EXPECTED[script]


@pytest.mark.timeout(200)
def test_the_bench_command_writes_the_report(tmp_path: Path) -> None:
    run("bench", "--quick", "--only", "commands,time_to_know", "--out", str(tmp_path), timeout_s=180)
    report = (tmp_path / "RESULTS.md").read_text()
    assert "| Redis commands per task (commandstats) |" in report
    assert "time to know" in report
    assert json.loads((tmp_path / "results.json").read_text())["commands"]["jobcast"]["commands_per_task"] > 0
