"""Guards that keep the house clean.

- Every public Keras object is registered under `keras_cool>`; a public
  callback is registered exactly when it defines `get_config` (Keras core
  callbacks have no config; ones built from Python callables stay so).
- No module imports `keras.src` or a backend package, except the modules
  in `BACKEND_MODULES`, which may import the backends they name (and still
  never `keras.src`). Add one only where a backend truly must differ.
- No `Lambda` layer anywhere (library or examples): it breaks safe mode.
- One public class per file, the file named after the class.
- Public classes document Args and an Example; layers also Call arguments.
- A private name (`_x`, not a dunder) is imported only from inside the
  package or module that holds it: `keras_cool/callbacks/x.py` may import
  `keras_cool._backend` and `keras_cool.callbacks._optimizer`, but not
  `keras_cool.data._pools` nor `keras_cool.capture.tag._ACTIVE`.
- No private module is longer than `MAX_PRIVATE_MODULE_LINES`.
- The package's import graph has no cycle and no upward arrow: no module
  imports a package above it (`keras_cool`, or its own package's
  `__init__`), so re-exports are read only from outside.
- Interpreter hooks (frame walks, profile / trace functions, signal
  handlers, the unraisable hook) live only in the rooms of
  `INTERPRETER_HOOK_MODULES`, each of which says why in its docstring.
"""

import ast
import importlib
import inspect
import pathlib
import re
import subprocess
import sys

import keras
import pytest

import keras_cool
from tests.public_api import SUBPACKAGES

PACKAGE_DIR = pathlib.Path(keras_cool.__file__).parent
REPO_DIR = pathlib.Path(__file__).parent.parent
MAX_PRIVATE_MODULE_LINES = 400
FORBIDDEN_IMPORTS = ("keras.src", "tensorflow", "tf_keras", "jax", "torch")
# Module (relative to keras_cool/) -> the backends it may import.
BACKEND_MODULES = {
    # One fused pass per weight for the EMA update where the train step is
    # not compiled with XLA (torch; TensorFlow on CPU): `keras.ops` has no
    # in-place lerp. See the module's docstring and benchmarks/ema_overhead.
    # Also one EMA update per step under tf.distribute (merge_call), and the
    # process index of a JAX / torch.distributed job.
    "_backend.py": ("tensorflow", "jax", "torch"),
}
# Module (relative to keras_cool/) -> why it may touch interpreter hooks.
INTERPRETER_HOOK_MODULES = {
    # Restores the weights on every exit path of fit (profile function).
    "callbacks/_exit_guard.py": "exit paths of fit",
    # Finds a best-only ModelCheckpoint beside the EMA at on_train_begin.
    "callbacks/_ema_checks.py": "callbacks of the running fit",
    # Ctrl-C during fit: worker cleanup before KeyboardInterrupt surfaces.
    "data/_interrupt.py": "SIGINT and the unraisable hook",
    # Workers ignore SIGINT; the parent decides.
    "data/_worker.py": "SIGINT in workers",
}
INTERPRETER_HOOKS = (
    "_getframe",
    "f_back",
    "setprofile",
    "settrace",
    "unraisablehook",
    "currentframe",
    "signal.signal",
)
KERAS_BASES = (
    keras.layers.Layer,
    keras.losses.Loss,
    keras.metrics.Metric,
    keras.initializers.Initializer,
    keras.regularizers.Regularizer,
    keras.constraints.Constraint,
    keras.optimizers.Optimizer,
    keras.optimizers.schedules.LearningRateSchedule,
)


def subpackage(sub):
    # Not getattr(keras_cool, sub): `keras_cool.capture` is the function.
    return importlib.import_module(f"keras_cool.{sub}")


def public_objects():
    found = {}
    for name in keras_cool.__all__:
        found[f"keras_cool.{name}"] = getattr(keras_cool, name)
    for sub in SUBPACKAGES:
        module = subpackage(sub)
        for name in module.__all__:
            found[f"keras_cool.{sub}.{name}"] = getattr(module, name)
    return {
        k: v
        for k, v in found.items()
        if inspect.isclass(v) or inspect.isfunction(v)
    }


def public_classes():
    return {k: v for k, v in public_objects().items() if inspect.isclass(v)}


def has_own_config(cls):
    """Whether `cls` or a keras_cool base of it defines `get_config`."""
    return any(
        "get_config" in vars(base)
        for base in cls.__mro__
        if base.__module__.startswith("keras_cool")
    )


def is_serializable_callback(obj):
    return (
        inspect.isclass(obj)
        and issubclass(obj, keras.callbacks.Callback)
        and has_own_config(obj)
    )


def keras_objects():
    """Classes deriving from a Keras base, callbacks with a config of their
    own, and the public loss functions."""
    objects = {}
    for path, obj in public_objects().items():
        is_keras_class = inspect.isclass(obj) and issubclass(obj, KERAS_BASES)
        is_loss_fn = inspect.isfunction(obj) and ".losses." in path
        if is_keras_class or is_loss_fn or is_serializable_callback(obj):
            objects[path] = obj
    return objects


def source_files(*roots):
    for root in roots:
        yield from sorted(pathlib.Path(root).rglob("*.py"))


def test_subpackages_have_explicit_all():
    for sub in SUBPACKAGES:
        module = subpackage(sub)
        assert isinstance(module.__all__, list), sub
        for name in module.__all__:
            assert hasattr(module, name), f"keras_cool.{sub}.{name}"
    assert keras_cool.__version__


@pytest.mark.parametrize("path", sorted(keras_objects()) or ["<none>"])
def test_public_keras_object_is_registered(path):
    if path == "<none>":
        pytest.skip("no public Keras objects yet")
    obj = keras_objects()[path]
    name = keras.saving.get_registered_name(obj)
    assert name == f"keras_cool>{obj.__name__}", (
        f"{path} is registered as {name!r}; decorate it with "
        '@keras.saving.register_keras_serializable(package="keras_cool")'
    )
    assert keras.saving.get_registered_object(name) is obj


def public_callbacks():
    return {
        path: obj
        for path, obj in public_classes().items()
        if issubclass(obj, keras.callbacks.Callback)
    }


@pytest.mark.parametrize("path", sorted(public_callbacks()))
def test_callback_registered_exactly_when_it_has_a_config(path):
    cls = public_callbacks()[path]
    registered = keras.saving.get_registered_object(
        f"keras_cool>{cls.__name__}"
    )
    if has_own_config(cls):
        assert registered is cls, f"{path} has get_config: register it"
    else:
        assert registered is None, (
            f"{path} has no get_config (its arguments are Python "
            "callables): do not register it"
        )


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def forbidden_imports(path, allowed=()):
    forbidden = [m for m in FORBIDDEN_IMPORTS if m not in allowed]
    prefixes = tuple(m + "." for m in forbidden)
    for line, module in imported_modules(path):
        if module in forbidden or module.startswith(prefixes):
            yield f"{path.name}:{line} imports {module}"


def test_no_private_or_backend_imports():
    bad = []
    for path in source_files(PACKAGE_DIR):
        relative = path.relative_to(PACKAGE_DIR).as_posix()
        allowed = BACKEND_MODULES.get(relative, ())
        bad.extend(f"{relative}: {b}" for b in forbidden_imports(path, allowed))
    assert not bad, "\n".join(bad)


def test_import_guard_catches_each_form(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(
        "import torch\n"
        "import jax.numpy as jnp\n"
        "from keras.src import ops\n"
        "from keras import src\n"
        "import tensorflow as tf\n"
        "import keras\n"
        "import torchvision_like_name_is_fine\n"
    )
    lines = {int(f.split(":")[1].split()[0]) for f in forbidden_imports(path)}
    assert lines == {1, 2, 3, 4, 5}, lines


def module_name(path, root=PACKAGE_DIR, package="keras_cool"):
    """Dotted name of the module at `path` (a package: its `__init__`)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def resolved_imports(path, module):
    """`(line, dotted name)` for each import, relative ones made absolute.

    `import a.b` gives `a.b`; `from a import b, c` gives `a.b` and `a.c`
    (`b` may be a module or any name in `a`); `from a import *` gives `a`.
    """
    package = (
        module if path.name == "__init__.py" else module.rpartition(".")[0]
    )
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:  # 1: this package, 2: its parent, ...
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                source = ".".join([*base, *([source] if source else [])])
            for alias in node.names:
                if alias.name == "*":
                    yield node.lineno, source
                else:
                    yield node.lineno, f"{source}.{alias.name}"


def is_private(part):
    return part.startswith("_") and not (
        part.startswith("__") and part.endswith("__")
    )


def private_imports(path, module):
    """Imports of a private name from outside the package that holds it."""
    for line, name in resolved_imports(path, module):
        parts = name.split(".")
        for i, part in enumerate(parts):
            owner = ".".join(parts[:i])
            inside = module == owner or module.startswith(owner + ".")
            if is_private(part) and not (owner and inside):
                yield f"{path.name}:{line} imports {name}"
                break


def test_no_private_names_imported_from_outside_their_package():
    bad = []
    for path in source_files(PACKAGE_DIR):
        bad.extend(private_imports(path, module_name(path)))
    assert not bad, (
        "A private name is private to the package or module holding it; "
        "make it public (no underscore) or move the importer:\n"
        + "\n".join(bad)
    )


def test_private_import_guard_catches_each_form(tmp_path):
    path = tmp_path / "x.py"
    path.write_text(
        "import keras_cool._backend\n"  # 1: parent package holds it: ok
        "from keras_cool.callbacks import _optimizer\n"  # 2: own: ok
        "from keras_cool.callbacks._optimizer import step\n"  # 3: ok
        "import keras_cool.data._pools\n"  # 4
        "from keras_cool.data import _pools\n"  # 5
        "from keras_cool.data._pools import ThreadPool\n"  # 6
        "from keras_cool.capture.tag import _ACTIVE\n"  # 7
        "from keras_cool._backend import _fused\n"  # 8: module's own
        "from .._backend import make\n"  # 9: relative, ok
        "from ..data import _pools as pools\n"  # 10: relative
        "from . import _optimizer\n"  # 11: relative, ok
        "from __future__ import annotations\n"  # 12: dunder, ok
        "from keras_cool import __version__\n"  # 13: dunder, ok
        "import _thread\n"  # 14: another library's private module
        "def f():\n"
        "    from keras.src import _private\n"  # 16: nested import
    )
    found = private_imports(path, "keras_cool.callbacks.x")
    lines = {int(f.split(":")[1].split()[0]) for f in found}
    assert lines == {4, 5, 6, 7, 8, 10, 14, 16}, lines


def test_private_modules_are_short():
    long = []
    for path in source_files(PACKAGE_DIR):
        if is_private(path.stem):
            lines = len(path.read_text().splitlines())
            if lines > MAX_PRIVATE_MODULE_LINES:
                long.append(f"{path.relative_to(PACKAGE_DIR)}: {lines}")
    assert not long, (
        f"Private modules over {MAX_PRIVATE_MODULE_LINES} lines; split them "
        "by job:\n" + "\n".join(long)
    )


def import_graph(root=PACKAGE_DIR, package="keras_cool"):
    """`{module: {(module it imports, line)}}` within the package.

    An import points at the longest package module its name starts with:
    `from keras_cool.capture import tag` at `keras_cool.capture.tag`,
    `from keras_cool import OutputCapture` at `keras_cool`. Imports inside
    functions count too: they are arrows all the same.
    """
    modules = {module_name(p, root, package): p for p in source_files(root)}
    graph = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, set())
        for line, name in resolved_imports(path, module):
            parts = name.split(".")
            for i in range(len(parts), 0, -1):
                target = ".".join(parts[:i])
                if target in modules:
                    if target != module:
                        edges.add((target, line))
                    break
    return graph


def upward_imports(graph):
    """Arrows to a package above the importer (`a.b.c` -> `a` or `a.b`)."""
    for module, edges in sorted(graph.items()):
        for target, line in sorted(edges):
            if module.startswith(target + "."):
                yield f"{module}:{line} imports {target}"


def import_cycle(graph):
    """One cycle `[m1, m2, ..., m1]` of the graph, or None."""
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted({t for t, _ in graph[module]}):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_import_graph_has_no_cycle_and_no_upward_import():
    graph = import_graph()
    # The walk sees subpackages and their arrows.
    targets = {t for t, _ in graph["keras_cool.capture.output_capture"]}
    assert {"keras_cool._layer_tree", "keras_cool.capture.tag"} <= targets
    up = list(upward_imports(graph))
    assert not up, "Upward imports (read re-exports from outside):\n" + (
        "\n".join(up)
    )
    cycle = import_cycle(graph)
    assert cycle is None, "Import cycle: " + " -> ".join(cycle)


def test_import_graph_guard_catches_cycles_and_upward_imports(tmp_path):
    files = {
        "__init__.py": "from pkg.sub import thing\n",
        "sub/__init__.py": "from pkg.sub.a import thing\n",
        "sub/a.py": "from pkg.sub import b\nthing = 1\n",
        "sub/b.py": "import numpy\n\n\ndef f():\n    from . import a\n",
        "sub/c.py": "from pkg import thing\n",
        "sub/d.py": "from .. import _low\nfrom pkg.sub import a\n",
        "_low.py": "import os\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.sub.d"] == {("pkg._low", 1), ("pkg.sub.a", 2)}
    assert list(upward_imports(graph)) == ["pkg.sub.c:1 imports pkg"]
    assert import_cycle(graph) == ["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"]
    (tmp_path / "sub/b.py").write_text("import numpy\n")
    assert import_cycle(import_graph(tmp_path, "pkg")) is None


def interpreter_hook_uses(root):
    """`path:line name` for each interpreter hook in code (not comments or
    docstrings) of the modules under `root`."""
    found = []
    for path in source_files(root):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                name = node.attr
                if name == "signal" and isinstance(node.value, ast.Name):
                    name = f"{node.value.id}.signal"
                if name in INTERPRETER_HOOKS:
                    relative = path.relative_to(root).as_posix()
                    found.append((relative, f"{relative}:{node.lineno} {name}"))
    return found


def test_interpreter_hooks_stay_in_their_rooms():
    bad = [
        where
        for relative, where in interpreter_hook_uses(PACKAGE_DIR)
        if relative not in INTERPRETER_HOOK_MODULES
    ]
    assert not bad, (
        "interpreter hooks outside INTERPRETER_HOOK_MODULES (move the code "
        "into one of them, or add the module with its reason):\n"
        + "\n".join(bad)
    )
    used = {relative for relative, _ in interpreter_hook_uses(PACKAGE_DIR)}
    assert set(INTERPRETER_HOOK_MODULES) <= used, (
        "stale INTERPRETER_HOOK_MODULES entries: "
        f"{sorted(set(INTERPRETER_HOOK_MODULES) - used)}"
    )


def test_interpreter_hook_guard_catches_each_form(tmp_path):
    (tmp_path / "a.py").write_text(
        "import sys, signal, inspect\n"
        "# sys._getframe in a comment is fine\n"
        "f = sys._getframe(1).f_back\n"
        "sys.setprofile(None)\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "sys.unraisablehook = print\n"
        "inspect.currentframe()\n"
    )
    names = [
        where.split(" ")[1] for _, where in interpreter_hook_uses(tmp_path)
    ]
    assert sorted(names) == sorted(
        [
            "_getframe",
            "f_back",
            "setprofile",
            "signal.signal",
            "unraisablehook",
            "currentframe",
        ]
    )


def test_backend_allow_list_is_short_and_real():
    assert len(BACKEND_MODULES) <= 3
    for relative in BACKEND_MODULES:
        assert (PACKAGE_DIR / relative).exists(), relative


def test_no_lambda_layers():
    bad = []
    roots = [PACKAGE_DIR, REPO_DIR / "examples", REPO_DIR / "benchmarks"]
    for path in source_files(*[r for r in roots if r.exists()]):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            name = getattr(node, "attr", None) or getattr(node, "id", None)
            if name == "Lambda":
                bad.append(f"{path}:{node.lineno}")
    assert not bad, "Lambda layers break safe-mode loading:\n" + "\n".join(bad)


def snake_case(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize("path", sorted(public_classes()) or ["<none>"])
def test_one_public_class_per_file(path):
    if path == "<none>":
        pytest.skip("no public classes yet")
    cls = public_classes()[path]
    module = cls.__module__.rsplit(".", 1)[-1]
    assert module == snake_case(cls.__name__), (
        f"{path} lives in {cls.__module__}; put it in "
        f"{snake_case(cls.__name__)}.py"
    )


@pytest.mark.parametrize("path", sorted(public_classes()) or ["<none>"])
def test_public_class_docstring_sections(path):
    if path == "<none>":
        pytest.skip("no public classes yet")
    cls = public_classes()[path]
    doc = inspect.getdoc(cls) or ""
    sections = ["Args:", "Example"]
    if issubclass(cls, keras.layers.Layer):
        sections.append("Call arguments:")
    missing = [s for s in sections if s not in doc]
    assert not missing, f"{path} docstring lacks {missing}"


def test_ruff_lint_and_format():
    # ruff is part of the test extra: pip install ".[test]".
    for args in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "."],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_installed_distribution_ships_every_subpackage():
    """Where keras-cool is installed (CI), it holds every package module."""
    from importlib import metadata

    try:
        files = metadata.files("keras-cool")
    except metadata.PackageNotFoundError:
        pytest.skip("keras-cool is not installed (running from a checkout)")
    if files is None or not any(str(f).endswith(".py") for f in files):
        pytest.skip("editable install: the checkout is the package")
    shipped = {pathlib.PurePath(str(f)).as_posix() for f in files}
    source = {
        "keras_cool/" + p.relative_to(PACKAGE_DIR).as_posix()
        for p in source_files(PACKAGE_DIR)
    }
    missing = sorted(source - shipped)
    assert not missing, f"not in the installed package: {missing}"
