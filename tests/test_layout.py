"""The package's layout holds: no module imports another that imports it back (imports inside functions
count too), the modules that read outputs or parse settings import neither Spark nor TensorFlow, and no test
hook lives in the package."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.helpers import ROOT

PACKAGE = ROOT / "sparkyfruit"


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in graph and t not in (name, "sparkyfruit")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                found.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "sparkyfruit.spark.session" in graph and "sparkyfruit.output_format" in graph
    assert cycles(graph) == []


def test_a_cycle_would_be_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_light_modules_import_neither_spark_nor_tensorflow():
    code = (
        "import sys\n"
        "import sparkyfruit.cli, sparkyfruit.config, sparkyfruit.inspection, sparkyfruit.output_format, "
        "sparkyfruit.locations, sparkyfruit.weights, sparkyfruit.spark.options, sparkyfruit.spark.jars\n"
        "heavy = [m for m in ('pyspark', 'tensorflow', 'keras', 'py4j') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_test_hook_lives_in_the_package():
    """The tests' faults (killing a worker or its executor) live in tests/worker_hooks/, which a user's
    workers never have on their path: no variable of the tests' acts on a user's run, and without the module
    featurize's hook does nothing."""
    from sparkyfruit import featurize

    named = [path.name for path in PACKAGE.rglob("*.py") if "SPARKYFRUIT_TEST_" in path.read_text()]
    assert not named, named
    assert featurize._worker_hook() is featurize._no_hook  # the tests' module is not on this process's path
    assert sys.modules.get(featurize.WORKER_HOOKS_MODULE) is None
