"""The package's shape: one-way layers (import-linter, in pyproject.toml) and no module
reaching into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import casematch

PACKAGE = Path(casematch.__file__).parent


def _private_imports(path: Path, root: Path = PACKAGE) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("casematch"):
            found += [f"{path.relative_to(root)}: {node.module}.{alias.name}"
                      for alias in node.names
                      if alias.name.startswith("_") and alias.name != "__version__"]
    return found


def test_no_module_imports_a_private_name_from_another() -> None:
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _private_imports(path)]
    assert offenders == []


def test_the_check_would_see_a_private_import(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("from casematch.sources.slack_threads import _hidden, ts_key\n",
                      encoding="utf-8")
    assert _private_imports(module, tmp_path) == [
        "probe.py: casematch.sources.slack_threads._hidden"]
