"""A real 2-process JAX job on 127.0.0.1 (gloo CPU collectives).

Both processes run `tests/multi_process_job.py`: `keras.distribution`
initialised on loopback, `DataParallel(auto_shard_dataset=False)`, a
`Sequence(shard="auto")` with a worker process, an EMA. They must end with
identical weights and EMA weights, equal to one process trained on the
same global batches; a process that dies makes the other fail with a clear
error, in bounded time.
"""

import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.fresh_process import ROOT
from tests.fresh_process import child_env

pytestmark = pytest.mark.backends("jax")

TIMEOUT = 240


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.multi_process_job", *map(str, args)],
        env=child_env(
            {"JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo", **(env or {})}
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(processes, timeout=TIMEOUT):
    """Waits for all, kills all on timeout; returns (codes, outputs)."""
    deadline = time.monotonic() + timeout
    codes, outputs = [], []
    try:
        for p in processes:
            out, _ = p.communicate(timeout=max(1, deadline - time.monotonic()))
            codes.append(p.returncode)
            outputs.append(out)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the job did not end within {timeout} s")
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    return codes, outputs


def load(path):
    with open(path) as f:
        return json.load(f)


def difference(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(a, b)
    )


def test_two_processes_agree_with_one_process(tmp_path):
    port = free_port()
    outs = [tmp_path / f"process_{i}.json" for i in range(2)]
    jobs = [start([i, 2, port, outs[i]]) for i in range(2)]
    jobs.append(start(["reference", tmp_path / "reference.json"]))
    codes, logs = finish(jobs)
    assert codes == [0, 0, 0], "\n".join(log[-3000:] for log in logs)
    first, second = load(outs[0]), load(outs[1])
    reference = load(tmp_path / "reference.json")
    assert first["step"] == second["step"] == reference["step"] == 8
    assert difference(first["weights"], second["weights"]) == 0.0
    assert difference(first["ema"], second["ema"]) == 0.0
    assert difference(first["weights"], reference["weights"]) < 1e-5
    assert difference(first["ema"], reference["ema"]) < 1e-5


def test_a_dying_process_fails_the_others_in_bounded_time(tmp_path):
    port = free_port()
    env = {"KC_DIE_AT_STEP": "1"}
    jobs = [start([i, 2, port, tmp_path / f"{i}.json"], env) for i in range(2)]
    began = time.monotonic()
    codes, logs = finish(jobs, timeout=150)
    assert codes == [2, 3], "\n".join(log[-3000:] for log in logs)
    assert "JOB FAILED" in logs[0]
    assert "by peer" in logs[0]  # gloo: connection closed / reset by peer
    assert time.monotonic() - began < 150


def test_saving_weights_split_across_processes_is_refused_at_fit_start(
    tmp_path,
):
    # Multi-host ModelParallel: the kernels are split over the processes,
    # so no process can write them; JAX would fail at the first save.
    port = free_port()
    outs = [tmp_path / f"{i}" / "out.json" for i in range(2)]
    for out in outs:
        out.parent.mkdir()
    env = {"KC_SPLIT_SAVE": "1"}
    jobs = [start([i, 2, port, outs[i]], env) for i in range(2)]
    codes, logs = finish(jobs)
    assert codes == [0, 0], "\n".join(log[-3000:] for log in logs)
    for out in outs:
        result = load(out)
        assert result["steps"] == 0  # refused before the first step
        assert set(result["refused"]) == {"ema", "evaluator"}
        assert "state_path=" in result["refused"]["ema"]
        assert "filepath=" in result["refused"]["evaluator"]
        for message in result["refused"].values():
            assert "split across the processes" in message
            assert "dense/kernel" in message
        assert not list(out.parent.glob("*.npz"))
        assert not list(out.parent.glob("*.h5"))


# One process of a 2-process job, written as a plain script with no
# `if __name__ == "__main__":` guard; it reads its place in the job from
# the environment, as a job launcher would set it.
UNGUARDED_JOB = """
import os
import keras
import numpy as np
import keras_cool

with open(os.environ["KC_MARKER"], "a") as f:
    f.write(f"{os.environ['KC_PROCESS_ID']} {os.getpid()}\\n")
keras.distribution.initialize(
    job_addresses=f"127.0.0.1:{os.environ['KC_PORT']}",
    num_processes=2,
    process_id=int(os.environ["KC_PROCESS_ID"]),
)
keras.distribution.set_distribution(
    keras.distribution.DataParallel(auto_shard_dataset=False)
)


class Batches(keras_cool.Sequence):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        x = self.rng.normal(size=(4, 4)).astype("float32")
        return x, x[:, :1]


data = Batches(seed=0, shard="auto", workers=2, use_multiprocessing=True)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
history = model.fit(data, epochs=2, verbose=0, shuffle=False)
data.close()
print("DONE", len(history.history["loss"]), flush=True)
"""


def test_unguarded_script_with_worker_processes_runs_a_two_process_job(
    tmp_path,
):
    # Workers never import __main__: the job's top level (and its
    # keras.distribution.initialize) runs once per process. It used to run
    # again in the fork server, and JAX's coordination service aborted
    # the job ("unexpectedly tried to connect with a different
    # incarnation").
    script = tmp_path / "job.py"
    script.write_text(UNGUARDED_JOB)
    marker = tmp_path / "marker.txt"
    port = free_port()
    jobs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            env=child_env(
                {
                    "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
                    "KC_MARKER": str(marker),
                    "KC_PORT": str(port),
                    "KC_PROCESS_ID": str(i),
                }
            ),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    codes, logs = finish(jobs, timeout=150)
    log = "\n".join(log[-3000:] for log in logs)
    assert codes == [0, 0], log
    assert all("DONE 2" in out for out in logs), log
    assert "incarnation" not in log
    lines = marker.read_text().split("\n")[:-1]
    assert sorted(line.split()[0] for line in lines) == ["0", "1"], log
