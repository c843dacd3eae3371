"""What deployment relies on: the health-check commands and the compose file's shape.
(No Docker engine is needed to run the tests; the compose file is checked as data.)"""

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

from jobcast.runtime.network import free_port
from jobcast.settings import Settings
from tests.helpers.processes import JobcastProcess, environment, start_api, start_worker

ROOT = Path(__file__).parents[2]


def health(settings: Settings, component: str, log: Path) -> int:
    process = JobcastProcess(["health", component], environment(settings), log)
    return process.process.wait(timeout=30)


def test_worker_health_follows_its_heartbeat(settings: Settings, tmp_path: Path) -> None:
    assert health(settings, "worker", tmp_path / "before.log") == 1
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        assert health(settings, "worker", tmp_path / "during.log") == 0
    finally:
        worker.stop()
    assert health(settings, "worker", tmp_path / "after.log") == 1


def test_api_health_follows_readiness(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(redis_url=settings.redis_url, port=port)
    assert health(settings, "api", tmp_path / "before.log") == 1
    api = start_api(settings, tmp_path / "api.log", port)
    try:
        assert health(settings, "api", tmp_path / "during.log") == 0
    finally:
        api.stop()


def test_compose_runs_redis_with_aof_and_every_service_with_a_health_check() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker"}
    assert all("healthcheck" in service for service in services.values())
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in services["redis"]["volumes"])
    for name in ("api", "worker"):
        assert services[name]["build"] == "."
        assert services[name]["healthcheck"]["test"] == ["CMD", "jobcast", "health", name]
    # --scale worker=N needs no fixed name or published port
    assert not {"container_name", "ports"} & set(services["worker"])
    assert 'CMD ["jobcast", "api"]' in (ROOT / "Dockerfile").read_text()


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_readme_has_a_line_for_every_setting() -> None:
    for name in Settings.__struct_fields__:
        assert f"| `JOBCAST_{name.upper()}` |" in readme()


def test_readme_gives_a_reason_for_every_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    dependencies = readme().split("## Dependencies", 1)[1]
    for requirement in requirements:
        name = re.split(r"[<>=\[ ]", requirement, maxsplit=1)[0]
        assert f"**{name}**" in dependencies, name


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(python3 -m venv .*)\n```", readme())
    assert len(commands) == 2  # one runs jobcast, one runs the tests
    run, test = commands
    assert run.endswith("jobcast dev")
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_package_in_src_is_installed_as_part_of_jobcast() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"jobcast": "src"}
    folders = [path.parent.relative_to(ROOT / "src") for path in (ROOT / "src").rglob("__init__.py")]
    in_src = {".".join(("jobcast", *folder.parts)) for folder in folders}
    assert set(setuptools["packages"]) == in_src


def test_the_installed_package_is_jobcast_and_nothing_named_src(tmp_path: Path) -> None:
    """What `pip install` puts in site-packages: a `jobcast/` folder, its Lua and dashboard files."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)]
    subprocess.run(command, check=True, timeout=300)
    (wheel,) = tmp_path.glob("jobcast-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"jobcast"}
    assert "jobcast/store/lua/check_then_write.lua" in names
    assert "jobcast/dashboard/index.html" in names
