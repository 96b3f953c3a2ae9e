"""Structural rules of the code base: the rooms and their order, checked on the source."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import textwrap

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "spark_gmm"

# Each room may import from rooms of a lower rank (and from itself), never from a higher one;
# rooms of one rank do not import each other. The package's __init__ resolves its public
# names lazily (by string, on first use): at run time it imports only the version.
RANKS = {"version": 0, "errors": 0, "spark_gmm": 1, "kernels": 1, "runtime": 2, "fit": 3, "ml": 4,
         "report": 5, "bench": 5, "etl": 6, "cli": 7}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(module: str) -> set[str]:
    """The spark_gmm modules ``module`` imports at run time (deferred imports included,
    ``if TYPE_CHECKING:`` blocks excluded), and any third-party top-level names."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # ``from . import x`` may name a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


def test_every_room_imports_only_downward() -> None:
    assert set(map(_room, MODULES)) == set(RANKS), "a room was added: give it a rank"
    for module in MODULES:
        for target in imports_of(module):
            if not target.startswith("spark_gmm"):
                continue
            assert target in MODULES, f"{module} imports {target}, which does not exist"
            source_room, target_room = _room(module), _room(target)
            if source_room == target_room:
                continue
            assert RANKS[target_room] < RANKS[source_room], (
                f"{module} (room {source_room}) imports {target} (room {target_room})")


def test_no_import_cycles() -> None:
    graph = {m: {t for t in imports_of(m) if t in MODULES and t != m} for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target):], module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_kernels_import_nothing_but_numpy_and_the_errors() -> None:
    kernels = [m for m in MODULES if _room(m) == "kernels"]
    assert len(kernels) >= 8
    for module in kernels:
        for target in imports_of(module):
            top = target.split(".")[0]
            assert top not in ("pyspark", "pyarrow", "pandas", "py4j"), f"{module}: {target}"
            if top == "spark_gmm":
                assert _room(target) in ("kernels", "errors"), f"{module} imports {target}"


def test_only_the_report_imports_matplotlib() -> None:
    # matplotlib is the optional ``report`` extra: nothing else may need it.
    for module in MODULES:
        if any(t.split(".")[0] == "matplotlib" for t in imports_of(module)):
            assert module in ("spark_gmm.report.figures", "spark_gmm.report.page"), module


def test_kernels_load_without_pyspark_or_pyarrow_in_a_fresh_interpreter() -> None:
    probe = ("import sys, spark_gmm.kernels, spark_gmm.errors; "
             "print(sorted(m for m in ('pyspark', 'pyarrow', 'pandas', 'py4j') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=PACKAGE.parent, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_public_names_and_moved_modules_still_import() -> None:
    probe = ("import spark_gmm.model, spark_gmm.estimator; "
             "from spark_gmm import GaussianMixture, GaussianMixtureModel; "
             "assert spark_gmm.model.GaussianMixtureModel is GaussianMixtureModel; "
             "assert spark_gmm.estimator.GaussianMixture is GaussianMixture")
    subprocess.run([sys.executable, "-c", probe], cwd=PACKAGE.parent, check=True)


def test_nothing_the_executors_load_imports_the_benchmark() -> None:
    for module in MODULES:
        if _room(module) in ("bench", "cli"):
            continue
        assert not any(t.startswith("spark_gmm.bench") for t in imports_of(module)), module


def test_library_code_does_not_print_pickle_or_eval() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py":
            continue  # the command line prints its results
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("print", "eval", "exec"), f"{path}: {node.func.id}"
        module = _module_name(path)
        for target in imports_of(module):
            assert target not in ("pickle", "cloudpickle", "yaml"), f"{path} imports {target}"


def test_kernels_have_one_class_per_covariance_type_implementing_one_abstract_type() -> None:
    import importlib
    import inspect

    from spark_gmm.kernels import COVARIANCE_TYPES, CovarianceType, covariance_of

    concrete: dict[str, list[type]] = {}
    for module in MODULES:
        if _room(module) != "kernels":
            continue
        for _, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if (issubclass(cls, CovarianceType) and not inspect.isabstract(cls)
                    and cls.__module__ == module):
                concrete.setdefault(cls.name, []).append(cls)
    assert sorted(concrete) == sorted(COVARIANCE_TYPES)
    assert all(len(classes) == 1 for classes in concrete.values()), concrete
    for name, [cls] in concrete.items():
        assert type(covariance_of(name)) is cls
    # Outside that module, no code branches on a covariance type's name.
    for module, path in MODULES.items():
        if module != "spark_gmm.kernels.covariance":
            text = path.read_text()
            for name in COVARIANCE_TYPES:
                assert f'== "{name}"' not in text and f"== '{name}'" not in text, (module, name)


def _environment_reads(source: str) -> list[str]:
    """The environment variables ``source`` reads (``os.environ[...]``, ``os.environ.get``,
    ``os.getenv`` and the like) whose names are string constants or module-level names of
    string constants, and every mention of a ``SPARK_GMM_TEST`` name."""
    tree = ast.parse(source)
    constants = {target.id: node.value.value for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 and isinstance(node.value.value, str)
                 for target in node.targets if isinstance(target, ast.Name)}

    def name_of(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return constants.get(node.id) if isinstance(node, ast.Name) else None

    def is_environ(node: ast.AST) -> bool:
        return ast.unparse(node).split(".")[-1] == "environ"

    found = [name for name in constants.values() if "SPARK_GMM_TEST" in name]
    found += ["SPARK_GMM_TEST"] * source.count("SPARK_GMM_TEST")
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            key = node.slice
        elif isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("getenv", "getenvb") or (
                    node.func.attr in ("get", "pop", "setdefault") and is_environ(node.func.value)):
                key = node.args[0]
        name = name_of(key) if key is not None else None
        if name is not None:
            found.append(name)
    return found


def test_no_module_reads_a_test_only_environment_variable() -> None:
    # Tests inject their faults and pauses from outside (tests/job_hooks.py: task hooks and
    # checkpoint pauses passed as parameters), never through the environment.
    bad = textwrap.dedent("""
        import os
        HANG = "SPARK_GMM_TEST_HANG"
        PAUSE_FOR_TESTS = "PAUSE_TEST_SECONDS"
        def pause():
            return os.environ.get(PAUSE_FOR_TESTS), os.getenv("MY_TEST_FLAG")
    """)
    assert {n for n in _environment_reads(bad) if "TEST" in n.upper()} == {
        "SPARK_GMM_TEST_HANG", "SPARK_GMM_TEST", "PAUSE_TEST_SECONDS", "MY_TEST_FLAG"}
    for module, path in MODULES.items():
        reads = [name for name in _environment_reads(path.read_text()) if "TEST" in name.upper()]
        assert not reads, f"{module} reads test-only environment variables {reads}"


def test_no_file_is_too_long() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path


def test_ruff_clean() -> None:
    root = PACKAGE.parent
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "spark_gmm", "tests", "jobs"],
                            cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
