"""Structural rules of the code base, checked statically."""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "spark_gmm"


def _imports(path: pathlib.Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_kernels_never_import_pyspark_or_upper_layers() -> None:
    kernel_files = sorted((PACKAGE / "kernels").glob("*.py"))
    assert len(kernel_files) >= 5
    for path in kernel_files:
        for module, level in _imports(path):
            assert not module.startswith("pyspark"), f"{path.name} imports {module}"
            assert level in (0, 1), f"{path.name} reaches outside kernels with a relative import"
            assert not module.startswith("spark_gmm"), f"{path.name} imports {module}"


def test_library_code_does_not_print_pickle_or_eval() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py":
            continue  # the command line prints its results
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("print", "eval", "exec"), f"{path}: {node.func.id}"
        for module, _ in _imports(path):
            assert module not in ("pickle", "cloudpickle", "yaml"), f"{path} imports {module}"


def test_no_file_is_too_long() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 420, path


def test_ruff_clean() -> None:
    import subprocess
    import sys

    root = PACKAGE.parent
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "spark_gmm", "tests", "jobs"],
                            cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
