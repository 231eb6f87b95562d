"""Guards that keep the house clean.

- Every public Keras object is registered under `keras_cool>`.
- No module imports `keras.src` or a backend package, except the modules
  in `BACKEND_MODULES`, which may import the backends they name (and still
  never `keras.src`). Add one only where a backend truly must differ.
- No `Lambda` layer anywhere (library or examples): it breaks safe mode.
- One public class per file, the file named after the class.
- Public classes document Args and an Example; layers also Call arguments.
"""

import ast
import inspect
import pathlib
import re
import subprocess
import sys

import keras
import pytest

import keras_cool

PACKAGE_DIR = pathlib.Path(keras_cool.__file__).parent
REPO_DIR = pathlib.Path(__file__).parent.parent
SUBPACKAGES = [
    "layers",
    "callbacks",
    "data",
    "losses",
    "models",
    "optimizers",
    "optimizers.schedules",
    "testing",
    "utils",
]
FORBIDDEN_IMPORTS = ("keras.src", "tensorflow", "tf_keras", "jax", "torch")
# Module (relative to keras_cool/) -> the backends it may import.
BACKEND_MODULES = {
    # One fused pass per weight for the EMA update where the train step is
    # not compiled with XLA (torch; TensorFlow on CPU): `keras.ops` has no
    # in-place lerp. See the module's docstring and benchmarks/ema_overhead.
    # Also reads TF1 checkpoints (Google's bert_model.ckpt) for
    # keras_cool.models: only TensorFlow reads that format (lazy import).
    "_backend.py": ("tensorflow", "torch"),
}
KERAS_BASES = (
    keras.layers.Layer,
    keras.losses.Loss,
    keras.metrics.Metric,
    keras.callbacks.Callback,
    keras.initializers.Initializer,
    keras.regularizers.Regularizer,
    keras.constraints.Constraint,
    keras.optimizers.Optimizer,
    keras.optimizers.schedules.LearningRateSchedule,
)


def subpackage(dotted):
    """`keras_cool.a.b` for `"a.b"`, through attributes (as users reach it)."""
    module = keras_cool
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


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


def keras_objects():
    """Classes deriving from a Keras base, and the public loss functions."""
    objects = {}
    for path, obj in public_objects().items():
        is_keras_class = inspect.isclass(obj) and issubclass(obj, KERAS_BASES)
        is_loss_fn = inspect.isfunction(obj) and ".losses." in path
        if is_keras_class or is_loss_fn:
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
