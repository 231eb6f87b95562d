"""Guards on the examples' command lines (fast: nothing trains).

For every `examples/*.py` not starting with `_`: `--help` shows every
option's default and every option has a help line, and `--quick` moves
the outputs to `outputs/<name>/quick/`, so a smoke run never overwrites a
full run's PNGs and `.keras` files. The quick runs themselves are in
`test_scripts.py`.
"""

import argparse
import importlib.util
import pathlib
import re
import sys

import pytest

REPO = pathlib.Path(__file__).parent.parent
EXAMPLES_DIR = REPO / "examples"
EXAMPLES = sorted(
    p for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_")
)


@pytest.fixture
def load_example(monkeypatch):
    """Imports an example as a module (its folder on `sys.path`, as when
    run as `python examples/x.py`)."""
    monkeypatch.syspath_prepend(str(EXAMPLES_DIR))

    def load(path):
        name = f"example_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load


def parse_args(module, argv, monkeypatch):
    """Runs `module.parse_args(argv)`; returns (its result or the
    `SystemExit` it raised, the parser it built)."""
    parsers = []
    original = argparse.ArgumentParser.parse_args

    def spy(self, *args, **kwargs):
        parsers.append(self)
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", spy)
        try:
            result = module.parse_args(argv)
        except SystemExit as exit:
            result = exit
    return result, parsers[-1]


def help_entries(text):
    """Option string -> the text of its entry in the `--help` output."""
    options = text[text.index("options:") :].splitlines()[1:]
    entries, current = {}, None
    for line in options:
        match = re.match(r"^  (-[^\s,]+)", line)
        if match:
            current = match.group(1)
            entries[current] = line
        elif current is not None:
            entries[current] += " " + line.strip()
    return entries


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_help_shows_every_default(path, load_example, monkeypatch, capsys):
    module = load_example(path)
    result, parser = parse_args(module, ["--help"], monkeypatch)
    assert isinstance(result, SystemExit) and result.code == 0
    entries = help_entries(capsys.readouterr().out)
    options = [a for a in parser._actions if a.dest != "help"]
    assert any(a.dest == "quick" for a in options)
    for action in options:
        if action.help == argparse.SUPPRESS:
            continue  # internal, hidden from --help
        name = action.option_strings[0]
        assert action.help and action.help.strip(), f"{name} has no help"
        if action.default is not None:
            assert "default" in entries[name], (
                f"{path.name} {name}: no default in {entries[name]!r}"
            )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_quick_writes_to_its_own_folder(path, load_example, monkeypatch):
    module = load_example(path)
    full, _ = parse_args(module, [], monkeypatch)
    quick, _ = parse_args(module, ["--quick"], monkeypatch)
    assert not full.quick and quick.quick
    assert not full.output_dir.endswith("quick")
    assert quick.output_dir.endswith("/quick")
    assert quick.output_dir == full.output_dir + "/quick"
    assert full.output_dir.rstrip("/").endswith(path.stem)
