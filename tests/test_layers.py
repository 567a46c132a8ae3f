"""The map and the code agree: rooms import only downward (.importlinter's layers, checked with
import-linter) and no room imports another room's private names (`_name`)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from conftest import ROOT

PACKAGE = ROOT / "likepred"


def room(module: str) -> str:
    """likepred.images.cache -> likepred.images; likepred.train -> likepred.train."""
    return ".".join(module.split(".")[:2])


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports(path, source: str | None = None) -> list[str]:
    """`from likepred.OTHER_ROOM... import _name` in the file at `path`, as 'file:line: module._name'."""
    mod = module_name(path)
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("likepred.") and room(node.module) != room(mod):
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_room_imports_another_rooms_private_names():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in private_imports(path)]
    assert not found, "private names imported across rooms (make them public where they belong):\n" + "\n".join(found)


def test_the_private_name_check_sees_one():
    path = PACKAGE / "features" / "images.py"
    assert private_imports(path, "from likepred.images.download import _safe_name, name_from_url\n") == [
        "likepred/features/images.py:1: likepred.images.download._safe_name"]
    assert private_imports(path, "from likepred.features import _x\n") == []  # its own room


def test_rooms_import_only_downward(tmp_path):
    pytest.importorskip("importlinter")  # the test extra installs it
    proc = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                           "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in proc.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract is not vacuous: a leaf importing a room above it is reported."""
    pytest.importorskip("importlinter")
    config = (ROOT / ".importlinter").read_text()
    copy = tmp_path / "likepred"
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy)], check=True)
    (copy / "errors.py").write_text((copy / "errors.py").read_text() + "\nimport likepred.train  # noqa\n")
    (tmp_path / ".importlinter").write_text(config)
    proc = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                           "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "likepred.errors is not allowed to import likepred.train" in proc.stdout, proc.stdout[-3000:]
