"""The docs cannot rot: their code runs, their API pages are complete.

- Every fenced python block in `docs/` and in `README.md` runs, on the
  backend under test. A page's blocks run in order in one namespace, like a
  notebook, inside an empty temporary folder. A block whose first line is
  a `# Fragment: ...` comment is shown to the reader as a fragment and is
  not run; such blocks are few (counted below).
- Every name in a public `__all__` has an entry (`::: keras_cool.x.Name`) in
  `docs/api/`.
- `README.md` stays at most 150 lines.
"""

import importlib
import pathlib
import re

import keras
import pytest

from tests.public_api import PUBLIC_PACKAGES

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.M | re.S)
FRAGMENT = "# Fragment:"
# Blocks shown as fragments by design (a reader's own model or files).
MAX_FRAGMENTS = 12
README_MAX_LINES = 150


def pages():
    """Markdown files whose python blocks are user-facing code."""
    found = sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)
    return [ROOT / "README.md"] + found


def python_blocks(path):
    """(line number, source) of each fenced python block of a page."""
    text = path.read_text()
    return [
        (text.count("\n", 0, match.start()) + 2, match.group(1))
        for match in FENCE.finditer(text)
    ]


def is_fragment(source):
    return source.lstrip().startswith(FRAGMENT)


PAGES_WITH_CODE = [p for p in pages() if python_blocks(p)]


@pytest.mark.parametrize(
    "page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(ROOT))
)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    namespace = {"__name__": "__docs__"}
    name = page.relative_to(ROOT)
    for line, source in python_blocks(page):
        if is_fragment(source):
            continue
        code = compile(source, f"{name}:{line}", "exec")
        exec(code, namespace)


def test_fragments_are_few():
    fragments = [
        f"{page.relative_to(ROOT)}:{line}"
        for page in pages()
        for line, source in python_blocks(page)
        if is_fragment(source)
    ]
    assert len(fragments) <= MAX_FRAGMENTS, fragments


def test_every_public_name_has_an_api_entry():
    text = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: ([\w.]+)", text, re.M))
    missing = []
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            value = getattr(module, name)
            if name == "__version__" or type(value).__name__ == "module":
                continue
            qualified = {f"{package}.{name}"}
            home = getattr(value, "__module__", "")
            if home.startswith("keras_cool"):
                # Re-exports (keras_cool.Sequence) count where documented.
                qualified.add(f"{home.rsplit('.', 1)[0]}.{name}")
            if not qualified & documented:
                missing.append(f"{package}.{name}")
    assert not missing, f"not in docs/api/: {missing}"


def test_api_entries_name_real_objects():
    for page in (DOCS / "api").glob("*.md"):
        for target in re.findall(r"^::: ([\w.]+)", page.read_text(), re.M):
            module, _, name = target.rpartition(".")
            assert hasattr(importlib.import_module(module), name), target


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines: keep it at most {README_MAX_LINES} "
        "and move guides, results and design notes into docs/."
    )
