"""The package is built in layers, and a module imports only from layers below its own (or from
its own package): `pytest tests/unit/test_layers.py` is the check."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Each part of `jobcast` (a package, or a module at the top of src/) and its layer.
LAYERS = {
    "settings": 0,
    "errors": 0,
    "model": 1,  # tasks, types, changes, transitions: pure data and rules
    "runtime": 1,  # processes, ports, logs, redis-server: the machine
    "store": 2,  # everything jobcast keeps in Redis
    "auth": 3,  # who may do what
    "actions": 4,  # what callers do, shared by HTTP and WebSocket
    "events": 4,  # the WebSocket protocol and the hub
    "workers": 4,  # the arq worker and the handlers' contexts
    "routes": 5,  # the Litestar app
    "cli": 6,
    "testing": 6,
    "__init__": 7,  # `from jobcast import task, TaskContext`
    "__main__": 7,
    "demo": 8,  # written as any user's handler module: `from jobcast import task`
}


def part_of(module: str) -> str:
    """`jobcast.store.tasks` → `store`; a name the package itself exports (`jobcast.task`) →
    `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "__init__"


def imports_of(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every `jobcast` import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jobcast":
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "jobcast"]
    return found


def upward_imports(root: Path = SRC) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        here = path.relative_to(root).parts[0].removesuffix(".py")
        for line, module, names in imports_of(path):
            # `from jobcast.store import keys` names the module jobcast.store.keys.
            targets = [f"{module}.{name}" for name in names] if module.count(".") <= 1 else [module]
            for target in targets:
                there = part_of(target)
                if there != here and LAYERS[there] >= LAYERS[here]:
                    problems.append(f"{path.relative_to(root)}:{line}: {here} (layer {LAYERS[here]}) "
                                    f"imports {target} (layer {LAYERS[there]})")  # fmt: skip
    return problems


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {path.name.removesuffix(".py") for path in SRC.iterdir() if path.suffix == ".py" or (
        path.is_dir() and (path / "__init__.py").exists())}  # fmt: skip
    assert parts == set(LAYERS)


def test_modules_import_only_from_lower_layers() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "tasks.py").write_text(
        "from jobcast.store import keys\n"
        "from jobcast.model.tasks import Task\n"
        "from jobcast.routes.app import create_app\n"
    )
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "hub.py").write_text("from jobcast import errors\nimport jobcast.workers.state\n")
    assert upward_imports(tmp_path) == [
        "events/hub.py:2: events (layer 4) imports jobcast.workers.state (layer 4)",
        "store/tasks.py:3: store (layer 2) imports jobcast.routes.app (layer 5)",
    ]
