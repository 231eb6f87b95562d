"""Worker processes in scripts that are hard on them: a script without the
`__main__` guard, a class defined in a script read from stdin, Ctrl-C.
Each test runs a fresh interpreter, bounded in time."""

import os
import signal
import subprocess
import sys
import time

import keras
import pytest

BACKEND = keras.backend.backend()

# A script with no `if __name__ == "__main__":` guard. Its top level
# appends a line to MARKER: worker processes must never run it again.
SCRIPT = """
import multiprocessing
import os
import numpy as np
import keras
import keras_cool

MARKER = {marker!r}
with open(MARKER, "a") as f:
    f.write(f"{{os.getpid()}}\\n")


def offset(x):  # a function of __main__, used by a method
    return x + 1.0


class Unguarded(keras_cool.Sequence):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale = {scale}

    def __len__(self):
        return 4

    def __getitem__(self, index):
        with open(MARKER + ".workers", "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        x = offset(self.scale(np.full((4, 3), index, "float32")))
        return x, x[:, :1]


data = Unguarded(workers={workers}, use_multiprocessing=True{method})
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
model.compile("sgd", "mse")
history = model.fit(data, epochs={epochs}, verbose=0, shuffle=False)
data.close()
print("FITTED", len(history.history["loss"]), flush=True)
print("CHILDREN", len(multiprocessing.active_children()), flush=True)
"""


def run_script(source, stdin, tmp_path, root, timeout=180):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=root)
    if stdin:
        args, kwargs = [sys.executable, "-"], {"input": source}
    else:
        path = tmp_path / "script.py"
        path.write_text(source)
        args, kwargs = [sys.executable, str(path)], {}
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(tmp_path),
        **kwargs,
    )


def run_unguarded(tmp_path, root, stdin, method=None, with_lambda=False):
    """Runs SCRIPT; checks that it trained with worker processes and ran
    its top level once. Returns the finished process."""
    marker = tmp_path / "marker.txt"
    epochs = 1 if method == "spawn" else 2  # spawn imports Keras: slow
    source = SCRIPT.format(
        marker=str(marker),
        scale="lambda x: 0.5 * x" if with_lambda else "np.negative",
        workers=1 if method == "spawn" else 2,
        method="" if method is None else f", start_method={method!r}",
        epochs=epochs,
    )
    done = run_script(source, stdin, tmp_path, root)
    log = done.stdout + done.stderr[-3000:]
    assert done.returncode == 0, log
    assert f"FITTED {epochs}" in done.stdout, log
    assert "CHILDREN 0" in done.stdout, log
    main_pid = marker.read_text().split()
    assert len(main_pid) == 1, log  # the top level ran exactly once
    workers = set((tmp_path / "marker.txt.workers").read_text().split())
    assert workers - {main_pid[0]}  # batches computed in worker processes
    return done


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "stdin, method, with_lambda",
    [(False, None, False), (True, "spawn", True)],
    ids=["script", "stdin-lambda-spawn"],
)
def test_script_without_main_guard_runs_its_top_level_once(
    stdin, method, with_lambda, tmp_path, repo_root
):
    # Workers get the dataset by value (cloudpickle) and never import
    # __main__: no guard needed, a file-less __main__ (stdin, a notebook)
    # and lambda attributes work, with forkserver and spawn. The two
    # cases between them cover a file and stdin, a plain function and a
    # lambda, the default start method and spawn (each a fresh
    # interpreter that imports Keras, 15-30 s).
    run_unguarded(tmp_path, repo_root, stdin, method, with_lambda)


@pytest.mark.backends("jax")
@pytest.mark.timeout(240)
def test_jax_fit_with_worker_processes_never_forks(tmp_path, repo_root):
    # A file-less __main__ used to fall back to fork, and JAX warned
    # "os.fork() was called ... will likely lead to a deadlock".
    done = run_unguarded(tmp_path, repo_root, stdin=True)
    assert "os.fork()" not in done.stderr, done.stderr[-3000:]


INTERRUPTED = """
import multiprocessing
import os
import time
import numpy as np
import keras
import keras_cool


class Slow(keras_cool.Sequence):
    def __len__(self):
        return 1000

    def __getitem__(self, index):
        time.sleep(0.01)
        x = np.random.rand(16, 8).astype("float32")
        return x, x[:, :1]


class Ready(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 3:
            print("READY", flush=True)


def main():
    data = Slow(workers=2, use_multiprocessing=True)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    try:
        model.fit(data, epochs=100, verbose=0, callbacks=[Ready()])
    except KeyboardInterrupt:
        caught = time.monotonic()
        print("CAUGHT", flush=True)
    except BaseException as error:
        print("OTHER", type(error).__name__, error, flush=True)
        return
    while multiprocessing.active_children():
        if time.monotonic() - caught > 5:
            break
        time.sleep(0.02)
    print("WORKERS_GONE_AFTER", time.monotonic() - caught, flush=True)
    print("LEFT", len(multiprocessing.active_children()), flush=True)


if __name__ == "__main__":
    main()
"""


PRESSED_INSIDE = """
import multiprocessing
import signal
import sys
import time
import numpy as np
import keras
import keras_cool


class Slow(keras_cool.Sequence):
    def __len__(self):
        return 40

    def __getitem__(self, index):
        time.sleep(0.01)
        x = np.random.rand(16, 8).astype("float32")
        return x, x[:, :1]


class Finalized:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # Python loses this Ctrl-C


class Press(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 3:
            if MODE == "finalizer":
                Finalized()  # freed at once
            else:
                signal.raise_signal(signal.SIGINT)


def graceful(signum, frame):
    print("PRESSED", flush=True)  # a handler that lets the epoch finish


MODE = sys.argv[1]


def main():
    if MODE == "graceful":
        signal.signal(signal.SIGINT, graceful)
    data = Slow(workers=2, use_multiprocessing=True)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    try:
        history = model.fit(data, epochs=2, verbose=0, callbacks=[Press()])
        print("FITTED", len(history.history["loss"]), flush=True)
    except KeyboardInterrupt:
        print("CAUGHT", flush=True)
    except BaseException as error:
        print("OTHER", type(error).__name__, error, flush=True)
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    print("LEFT", len(multiprocessing.active_children()), flush=True)


if __name__ == "__main__":
    main()
"""


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "mode, expected",
    [("finalizer", "CAUGHT"), ("graceful", "FITTED 2")],
)
def test_ctrl_c_lost_in_a_finalizer_or_handled_by_the_user(
    mode, expected, tmp_path, repo_root
):
    # finalizer: Python drops a KeyboardInterrupt raised in `__del__`; it
    # is delivered again, so `fit` stops instead of running on with
    # stopped workers. graceful: the user's own SIGINT handler returns, so
    # the workers keep serving and training goes on.
    path = tmp_path / "pressed.py"
    path.write_text(PRESSED_INSIDE)
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=repo_root)
    done = subprocess.run(
        [sys.executable, str(path), mode],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert expected in done.stdout, done.stdout + done.stderr[-3000:]
    assert "LEFT 0" in done.stdout, done.stdout


def interrupt_once(path, root):
    """Runs the script in its own process group, sends SIGINT to the
    group once training runs; returns (stdout, processes left 2 s after
    the script ended)."""
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=root)
    process = subprocess.Popen(
        [sys.executable, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "READY" in line:
                break
        time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    time.sleep(2.0)
    left = subprocess.run(
        ["pgrep", "-g", str(process.pid)], capture_output=True, text=True
    ).stdout.split()
    return "".join(lines) + out, left


@pytest.mark.skipif(sys.platform != "linux", reason="process groups, pgrep")
@pytest.mark.timeout(900)
def test_sigint_to_the_process_group_during_fit(tmp_path, repo_root):
    # KERAS_COOL_SIGINT_RUNS=10 for the full check (each run is one fresh
    # interpreter: about 10-20 s with TensorFlow on a busy CPU).
    runs = int(os.environ.get("KERAS_COOL_SIGINT_RUNS", "2"))
    path = tmp_path / "interrupted.py"
    path.write_text(INTERRUPTED)
    for run in range(runs):
        out, left = interrupt_once(path, repo_root)
        assert "CAUGHT" in out, f"run {run}: {out}"
        gone = float(out.split("WORKERS_GONE_AFTER")[1].split()[0])
        assert gone < 2.0, f"run {run}: workers alive {gone:.2f} s"
        assert "LEFT 0" in out, f"run {run}: {out}"
        assert not left, f"run {run}: processes left: {left}"
