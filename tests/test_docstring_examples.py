"""Every docstring `Example:` of the public API runs, on the backend under test.

In the spirit of keras-hub's `docstring_test.py`. The docstrings collected
are those of every name in a public `__all__` (`keras_cool` and its
subpackages), and of the public methods and properties a public class
defines itself. The fenced ```` ```python ```` blocks of a docstring's
`Example:` (or `Examples:`) section run in order, in one fresh namespace,
inside an empty temporary folder, after `keras.utils.set_random_seed(0)`.

The namespace convention (what an Example may use without importing it):
`keras`, `np` (numpy), `ops` (`keras.ops`) and `keras_cool`. Anything else
an Example imports itself. Examples build their own tiny data and files
and run in a few seconds at most.

A block whose first line is a `# Fragment: why` comment is shown to the
reader but not run; at most `MAX_FRAGMENTS` in the whole package. Every
public class has an Example with at least one block that runs.
"""

import importlib
import inspect
import re

import keras
import numpy as np
import pytest

from tests.public_api import PUBLIC_PACKAGES

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.M | re.S)
# A Google-style section header, at the docstring's own indentation.
SECTION = re.compile(r"^[A-Z][A-Za-z ]*:\s*$", re.M)
EXAMPLE = re.compile(r"^Examples?:\s*$", re.M)
FRAGMENT = "# Fragment:"
MAX_FRAGMENTS = 3


def _own_members(cls):
    """Public methods and properties that `cls` defines, with a docstring."""
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property) or inspect.isfunction(member):
            if member.__doc__:
                yield name, member


def public_docstrings():
    """`{qualified name: docstring}` of the public API."""
    found = {}
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            # Name an object by the deepest package that exports it.
            owner = f"{obj.__module__}.{obj.__qualname__}"
            path = f"{package}.{name}"
            if owner in found and len(found[owner][0]) >= len(path):
                continue
            docs = [(path, obj.__doc__ or "")]
            if inspect.isclass(obj):
                docs += [
                    (f"{path}.{member_name}", member.__doc__)
                    for member_name, member in _own_members(obj)
                ]
            found[owner] = (path, docs)
    return dict(doc for _, docs in found.values() for doc in docs)


def example_blocks(docstring):
    """The fenced python blocks of a docstring's `Example:` section."""
    text = inspect.cleandoc(docstring)
    start = EXAMPLE.search(text)
    if start is None:
        return []
    end = SECTION.search(text, start.end())
    section = text[start.end() : end.start() if end else len(text)]
    return [match.group(1) for match in FENCE.finditer(section)]


def is_fragment(source):
    return source.lstrip().startswith(FRAGMENT)


DOCSTRINGS = public_docstrings()
EXAMPLES = {
    name: blocks
    for name, doc in sorted(DOCSTRINGS.items())
    if (blocks := example_blocks(doc))
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docstring_example_runs(name, tmp_path, monkeypatch):
    blocks = [b for b in EXAMPLES[name] if not is_fragment(b)]
    if not blocks:
        pytest.skip(f"{name}: fragment only")
    monkeypatch.chdir(tmp_path)
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    namespace = {
        "__name__": "__docstring__",
        "keras": keras,
        "np": np,
        "ops": keras.ops,
        "keras_cool": importlib.import_module("keras_cool"),
    }
    for i, source in enumerate(blocks):
        exec(compile(source, f"<{name} example {i}>", "exec"), namespace)


def test_public_classes_have_a_running_example():
    """Each public class has an Example block that runs (not a fragment)."""
    missing = []
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.isclass(obj):
                continue
            blocks = example_blocks(obj.__doc__ or "")
            if not any(not is_fragment(b) for b in blocks):
                missing.append(f"{package}.{name}")
    assert not missing, f"no runnable Example: {missing}"


def test_python_blocks_sit_in_example_sections():
    """A fenced python block outside `Example:` would never run."""
    stray = [
        name
        for name, doc in DOCSTRINGS.items()
        if len(FENCE.findall(inspect.cleandoc(doc))) != len(example_blocks(doc))
    ]
    assert not stray, f"python blocks outside an Example section: {stray}"


def test_fragments_are_few():
    fragments = [
        name
        for name, blocks in EXAMPLES.items()
        for block in blocks
        if is_fragment(block)
    ]
    assert len(fragments) <= MAX_FRAGMENTS, fragments
