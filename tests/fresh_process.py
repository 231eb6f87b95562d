"""Run a snippet in a fresh Python interpreter, with its own environment.

Multi-device tests need settings that act only before the backend starts
(TensorFlow logical devices, JAX's `XLA_FLAGS` / `JAX_NUM_CPU_DEVICES`),
and pytest's process has already started it. `run_fresh(code, env)` runs
`code` with this interpreter, the checkout (`tests.` included) importable
and `KERAS_BACKEND` set to the backend under test, bounded by `timeout`
seconds. The snippet reports by printing one line `RESULT <json>`; the
parsed JSON is returned. A non-zero exit, a timeout or a missing line
fails the test with the snippet's output.
"""

import json
import os
import subprocess
import sys

import keras
import pytest

__all__ = ["run_fresh", "child_env"]

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


def child_env(env=None):
    """The environment of a fresh interpreter: ours, the checkout and
    importable, plus `env`."""
    out = dict(os.environ)
    out["PYTHONPATH"] = ROOT
    out["KERAS_BACKEND"] = keras.backend.backend()
    out.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out.pop("XLA_FLAGS", None)
    out.update(env or {})
    return out


def run_fresh(code, env=None, timeout=300):
    """Runs `code` in a fresh interpreter; returns its `RESULT` JSON."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=child_env(env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        err = e.stderr or b""
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        pytest.fail(f"snippet timed out after {timeout} s:\n{err[-4000:]}")
    tail = (done.stdout + done.stderr)[-4000:]
    if done.returncode != 0:
        pytest.fail(f"snippet exited with {done.returncode}:\n{tail}")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    pytest.fail(f"snippet printed no RESULT line:\n{tail}")
