"""Worker processes in scripts that are hard on them: a class defined in a
script read from stdin, a script without the `__main__` guard. Each test
runs a fresh interpreter, bounded in time."""

import os
import signal
import subprocess
import sys
import time

import keras
import pytest

BACKEND = keras.backend.backend()

SCRIPT = """
import os
os.environ["KERAS_BACKEND"] = {backend!r}
import multiprocessing
import numpy as np
import keras
import keras_cool

class Stdin(keras_cool.Sequence):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        x = np.full((4, 3), index, "float32")
        return x, x[:, :1]

def train():
    data = Stdin(workers=2, use_multiprocessing=True{method})
    print("CONSTRUCTED", flush=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    try:
        model.fit(data, epochs=2, verbose=0, shuffle=False)
    finally:
        data.close()

def main():
    try:
        train()
    except Exception as error:
        print("ERROR", type(error).__name__, error, flush=True)
    else:
        print("FITTED", flush=True)
    print("CHILDREN", len(multiprocessing.active_children()), flush=True)

{call}
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


def script(guard=True, method=None):
    return SCRIPT.format(
        backend=BACKEND,
        # Without the guard, a re-imported main module trains again (in
        # the parent, errors are caught to be printed).
        call=(
            'if __name__ == "__main__":\n    main()'
            if guard
            else 'main() if __name__ == "__main__" else train()'
        ),
        method="" if method is None else f", start_method={method!r}",
    )


@pytest.mark.timeout(240)
def test_class_defined_in_a_script_read_from_stdin_works(tmp_path, repo_root):
    done = run_script(script(), True, tmp_path, repo_root)
    assert "FITTED" in done.stdout, done.stdout + done.stderr[-3000:]
    assert "CHILDREN 0" in done.stdout


@pytest.mark.timeout(240)
def test_stdin_class_with_spawn_gets_a_clear_error(tmp_path, repo_root):
    done = run_script(script(method="spawn"), True, tmp_path, repo_root)
    assert "ERROR" in done.stdout, done.stdout + done.stderr[-3000:]
    assert "defined in __main__ without a file" in done.stdout
    assert "start_method='fork'" in done.stdout
    assert "CONSTRUCTED" not in done.stdout  # refused at construction
    assert "CHILDREN 0" in done.stdout


@pytest.mark.timeout(240)
def test_script_without_main_guard_is_told_about_the_guard(tmp_path, repo_root):
    done = run_script(
        script(guard=False, method="spawn"), False, tmp_path, repo_root
    )
    out = done.stdout
    assert "ERROR" in out, out + done.stderr[-3000:]
    assert 'if __name__ == "__main__":' in out
    assert "out of memory" not in out


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
