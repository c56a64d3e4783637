"""The package's layers (docs/architecture.md): a module imports only from its own layer or the layers below,
and never a private (`_name`) name of another module. Lazy imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# The most specific prefix wins; every module of the package must match one.
LAYERS: dict[str, int] = {
    # 0 foundation: no project imports but each other
    "unlearn.errors": 0, "unlearn.io": 0, "unlearn.interrupt": 0, "unlearn.processes": 0,
    # 1 core: settings, data, models, metrics, the training loop, the methods, the Unlearner
    "unlearn.config": 1, "unlearn.registry": 1, "unlearn.data": 1, "unlearn.models": 1, "unlearn.metrics": 1,
    "unlearn.train": 1, "unlearn.methods": 1, "unlearn.unlearner": 1, "unlearn.teaching": 1,
    # 2 capabilities built on the core: attacks, guards, reports
    "unlearn.attacks": 2, "unlearn.guards": 2, "unlearn.report": 2,
    # 3 applications: what a user runs
    "unlearn.runner": 3, "unlearn.auditing": 3, "unlearn.audit_report": 3, "unlearn.run_report": 3, "unlearn.requests": 3, "unlearn.exact": 3,
    "unlearn.benchmarks": 3, "unlearn.guards.server": 3, "unlearn.guards.load": 3, "unlearn.cli": 3,
    "unlearn.__main__": 3, "unlearn": 3,
}
NAMES = {0: "foundation", 1: "core", 2: "capabilities", 3: "applications"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    raise KeyError(module)


def project_imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every `unlearn` import in `source`, the text of `module`."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "unlearn"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != "unlearn" and not target.startswith("unlearn."):
                continue
            names = [a.name for a in node.names]
            if node.module is None:  # `from . import x`: x is a module of the package
                found += [(node.lineno, f"{target}.{n}", []) for n in names]
            else:
                found.append((node.lineno, target, names))
    return found


def imports_of(path: Path) -> list[tuple[int, str, list[str]]]:
    return project_imports(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


MODULES = sorted(SRC.joinpath("unlearn").rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in MODULES if not any(
        module_name(p) == k or module_name(p).startswith(k + ".") for k in LAYERS)]
    assert not missing, f"place these modules in a layer (tests/test_layers.py, docs/architecture.md): {missing}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_go_down_or_sideways_only(path):
    mine = layer(module_name(path))
    upward = [f"line {line}: {target} ({NAMES[layer(target)]})" for line, target, _ in imports_of(path)
              if layer(target) > mine]
    assert not upward, f"{module_name(path)} ({NAMES[mine]}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_private_name_of_another_module_is_imported(path):
    private = [f"line {line}: {target}.{name}" for line, target, names in imports_of(path) for name in names
               if name.startswith("_") and not name.startswith("__")]
    assert not private, f"{module_name(path)} reaches into private names: {private}"


def test_the_checks_see_a_violation():
    """The parser resolves relative imports, so an upward and a private import in a core module are found."""
    source = "from ..cli import main\nfrom ..io import _hidden\nfrom . import common\nimport unlearn.runner\n"
    imports = project_imports(source, "unlearn.metrics.probe")
    assert [(t, n) for _, t, n in imports] == [("unlearn.cli", ["main"]), ("unlearn.io", ["_hidden"]),
                                               ("unlearn.metrics.common", []), ("unlearn.runner", [])]
    assert layer("unlearn.cli") > layer("unlearn.metrics.probe") and layer("unlearn.guards.server") == 3
