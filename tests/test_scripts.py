"""Every example and benchmark runs with `--quick` and ends as agreed.

Examples end with one line `RESULT key=value key=value ...`; benchmarks end
with `NAME: ratio=R (A=... s, B=... s)`. Scripts run in a temporary working
directory (so their PNGs land there) with the current backend.
"""

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
    return lines[-1]


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_quick(path, tmp_path):
    last = run_script(path, tmp_path, timeout=300)
    assert RESULT_LINE.match(last), f"last line is not a RESULT line: {last}"


@pytest.mark.slow
@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_runs_quick(path, tmp_path):
    last = run_script(path, tmp_path, timeout=300)
    assert RATIO_LINE.match(last), f"last line is not a ratio line: {last}"


def test_conventions_match():
    assert RESULT_LINE.match("RESULT acc=0.91 nmi=0.85")
    assert not RESULT_LINE.match("RESULT acc 0.91")
    assert RATIO_LINE.match("ema_overhead: ratio=1.02 (A=0.10 s, B=0.098 s)")
    assert not RATIO_LINE.match("ema_overhead 1.02")
