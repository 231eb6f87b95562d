"""Every example and benchmark runs with `--quick` and ends as agreed.

Examples end with one line `RESULT key=value key=value ... quick=1`, after
a line saying that the numbers of a quick run are not meaningful, and write
their files under `outputs/<name>/quick/` only; benchmarks end with
`NAME: ratio=R (A=... s, B=... s)`. Scripts run in a temporary working
directory (so their PNGs land there) with the current backend, two at a
time: the first script test starts every selected script, and each test
waits for its own. (Most of a quick run is Python imports and tracing, one
core each, so two at a time take about half as long on two cores; nothing
else runs while they do.)
"""

import concurrent.futures
import os
import pathlib
import re
import subprocess
import sys

import keras
import pytest

REPO = pathlib.Path(__file__).parent.parent
EXAMPLES = sorted(
    p for p in (REPO / "examples").glob("*.py") if not p.name.startswith("_")
)
BENCHMARKS = sorted(
    p for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_")
)
RESULT_LINE = re.compile(r"^RESULT( [A-Za-z_][\w]*=\S+)+$")
RATIO_LINE = re.compile(r"^\S[^:]*: ratio=[0-9.]+(e-?\d+)? \(.+\)$")


def run_script(path, tmp_path, timeout):
    """Runs `path --quick` in `tmp_path`; returns its non-empty lines."""
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    proc = subprocess.run(
        [sys.executable, str(path), "--quick"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"{path.name} --quick exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"{path.name} printed nothing"
    return lines


class ScriptRuns(dict):
    """Path -> future of `run_script`; `.folders`: path -> its cwd."""

    def __init__(self):
        super().__init__()
        self.folders = {}


@pytest.fixture(scope="module")
def script_runs(request, tmp_path_factory):
    """Path -> future of `run_script`, for every selected script test."""
    selected = [
        item.callspec.params["path"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    runs = ScriptRuns()
    for path in selected:
        runs.folders[path] = tmp_path_factory.mktemp(path.stem)
        runs[path] = pool.submit(run_script, path, runs.folders[path], 300)
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_quick(path, script_runs):
    lines = script_runs[path].result()
    last = lines[-1]
    assert RESULT_LINE.match(last), f"last line is not a RESULT line: {last}"
    assert last.endswith(" quick=1"), last
    assert "not meaningful" in lines[-2], lines[-2]
    # Everything the quick run wrote is under outputs/<name>/quick/, so a
    # full run's outputs in outputs/<name>/ stay untouched.
    folder = script_runs.folders[path]
    written = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file()
    )
    assert written, f"{path.name} --quick wrote no files"
    quick = f"outputs/{path.stem}/quick/"
    outside = [p for p in written if not p.startswith(quick)]
    assert not outside, f"{path.name} --quick wrote outside {quick}: {outside}"


@pytest.mark.slow
@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_runs_quick(path, script_runs):
    last = script_runs[path].result()[-1]
    assert RATIO_LINE.match(last), f"last line is not a ratio line: {last}"


def test_conventions_match():
    assert RESULT_LINE.match("RESULT acc=0.91 nmi=0.85")
    assert RESULT_LINE.match("RESULT acc=0.91 nmi=0.85 quick=1")
    assert not RESULT_LINE.match("RESULT acc 0.91")
    assert RATIO_LINE.match("ema_overhead: ratio=1.02 (A=0.10 s, B=0.098 s)")
    assert not RATIO_LINE.match("ema_overhead 1.02")
