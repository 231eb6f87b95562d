"""keras_cool.Sequence: worker threads and processes, failures, resources.

Process-based tests are few and small (starting processes that import Keras
is slow on a small machine); most use start_method="fork", one uses the
default ("forkserver"). Datasets are sent to workers by value, so a class
defined in a file-less `__main__` (a notebook) works too.
"""

import concurrent.futures
import multiprocessing
import os
import pickle
import signal
import time
import types

import h5py
import keras
import numpy as np
import pytest

import keras_cool
from keras_cool.data import _order
from keras_cool.data import _pools
from tests.data.datasets import Noise
from tests.data.datasets import Regression
from tests.data.datasets import epochs_of
from tests.data.datasets import tiny_model

pytestmark = pytest.mark.filterwarnings(
    "ignore:os.fork\\(\\) was called:RuntimeWarning"
)


class Failing(Noise):
    def __getitem__(self, index):
        if index == 3:
            raise ValueError("bad sample in batch three")
        return super().__getitem__(index)


class Killed(Noise):
    def __getitem__(self, index):
        if index == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


def _square(value):
    return value * value


class H5Batches(keras_cool.Sequence):
    """Reads an HDF5 file opened once per worker; uses a nested pool."""

    def __init__(self, path, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.path = path
        self.batch_size = batch_size
        with h5py.File(path, "r") as file:
            self.size = len(file["x"])
        self.file = None

    def open_resources(self):
        self.file = h5py.File(self.path, "r")
        self.opened = getattr(self, "opened", 0) + 1

    def close_resources(self):
        self.file.close()

    def __len__(self):
        return self.size // self.batch_size

    def __getitem__(self, index):
        start = index * self.batch_size
        x = self.file["x"][start : start + self.batch_size]
        with multiprocessing.get_context("fork").Pool(2) as pool:
            squares = pool.map(_square, [int(v) for v in x[:, 0]])
        noise = self.rng.integers(10**9)
        return x, np.array(squares), np.array([os.getpid(), self.opened]), noise


def test_worker_thread_exception_names_the_batch():
    data = Failing(seed=0, workers=2)
    with pytest.raises(ValueError, match="bad sample") as info:
        list(data)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "batch 3 (epoch 0)" in notes
    with pytest.raises(ValueError, match="bad sample") as info:
        Failing(seed=0)[3]
    assert "batch 3" in "\n".join(getattr(info.value, "__notes__", []))


class OpenFile(Regression):
    """Opens a file in `__init__`: a handle cannot be sent to a worker."""

    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        self.handle = open(path, "rb")


# A notebook cell: run in a fresh module named __main__ that has no file.
NOTEBOOK_CELL = """
import os
import numpy as np
import keras_cool


class Cell(keras_cool.Sequence):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale = lambda x: 2 * x  # a lambda attribute

    def __len__(self):
        return 4

    def __getitem__(self, index):
        value = self.scale(self.rng.integers(10**9))
        return np.array([index, value, os.getpid()])
"""


def notebook_class():
    module = types.ModuleType("__main__")  # no __file__, as in a notebook
    exec(NOTEBOOK_CELL, module.__dict__)
    return module.Cell


def test_thread_pool_runs_a_plain_callable_and_prefetches_by_itself():
    def compute(epoch, index):
        return (epoch, index)

    # Epoch 7's order, resumed at position 1, prefetching at most 2.
    order = np.array([4, 2, 0, 3, 1])
    plan = _order.Plan("key", 7, order[1:], 2, served=(), start=1)
    pool = _pools.ThreadPool(compute, 2, "Plain")
    try:
        assert plan.length == 4
        assert pool.get(plan, 0) == (7, 2)
        assert pool.has(plan, 1) and not pool.has(plan, 2)
        assert [pool.get(plan, p) for p in (1, 2, 3)] == [
            (7, 0),
            (7, 3),
            (7, 1),
        ]
        pool.refresh()
        assert not pool.has(plan, 1)
    finally:
        pool.close()
    with pytest.raises(_pools.Closed):
        pool.get(plan, 0)


@pytest.mark.timeout(60)
def test_unpicklable_attribute_is_named_at_fit_start(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("0\n")
    data = OpenFile(str(path), workers=2, use_multiprocessing=True)
    model = tiny_model()
    try:
        with pytest.raises(TypeError, match="`handle`.*open_resources"):
            model.fit(data, epochs=2, verbose=0, shuffle=False)
    finally:
        data.handle.close()
    assert int(model.optimizer.iterations.numpy()) == 0  # before a step
    assert not multiprocessing.active_children()


@pytest.mark.timeout(60)
def test_notebook_class_with_a_lambda_runs_in_worker_processes():
    # Sent by value (cloudpickle): the default start method's workers
    # never import the file-less __main__ the class was defined in.
    cell = notebook_class()
    assert cell.__module__ == "__main__"
    inline = np.stack(list(cell(seed=3)))
    data = cell(seed=3, workers=2, use_multiprocessing=True)
    got = np.stack(list(data))
    assert not multiprocessing.active_children()
    np.testing.assert_array_equal(got[:, :2], inline[:, :2])
    assert os.getpid() not in set(got[:, 2].tolist())


def test_resources_open_once_per_process_and_are_not_pickled(tmp_path):
    path = str(tmp_path / "x.h5")
    with h5py.File(path, "w") as file:
        file["x"] = np.arange(32).reshape(8, 4)
    data = H5Batches(path, seed=0)
    assert data.file is None
    first = data[1]
    data[0]
    assert data.opened == 1 and data.file
    np.testing.assert_array_equal(first[0][:, 0], [16, 20, 24, 28])
    copy = pickle.loads(pickle.dumps(data))
    assert copy.file is None and not hasattr(copy, "opened")
    np.testing.assert_array_equal(copy[1][0], first[0])
    data.close()
    copy.close()
    assert not data.file


# ------------------------------------------------------------- processes


@pytest.mark.timeout(60)
def test_fit_with_worker_processes_matches_one_worker():
    inline = epochs_of(Noise(seed=5, num_batches=7))
    forked = epochs_of(
        Noise(
            seed=5,
            num_batches=7,
            workers=2,
            use_multiprocessing=True,
            start_method="fork",
            max_queue_size=3,
        )
    )
    # Every source of randomness, the global ones included, is exact.
    np.testing.assert_array_equal(forked, inline)
    assert not multiprocessing.active_children()

    weights = []
    for kwargs in ({}, {"workers": 2, "use_multiprocessing": True}):
        net = tiny_model()
        data = Regression(seed=11, shuffle=True, start_method="fork", **kwargs)
        net.fit(data, epochs=2, shuffle=False, verbose=0)
        weights.append(net.get_weights())
        assert not multiprocessing.active_children(), "worker left after fit"
    for got, want in zip(*weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.timeout(60)
def test_h5py_resources_and_nested_pool_in_default_start_method(tmp_path):
    path = str(tmp_path / "data.h5")
    with h5py.File(path, "w") as file:
        file["x"] = np.arange(96).reshape(24, 4)
    with H5Batches(path, seed=4, shuffle=True) as reference:
        inline = [list(reference) for _ in range(2)]
    data = H5Batches(
        path,
        seed=4,
        shuffle=True,
        workers=2,
        use_multiprocessing=True,
        persistent_workers=True,
    )
    assert data._kc_runtime().pool is None
    with data:
        got = [list(data) for _ in range(2)]
        assert len(multiprocessing.active_children()) == 2
    assert not multiprocessing.active_children()
    for epoch in range(2):
        for want, batch in zip(inline[epoch], got[epoch]):
            np.testing.assert_array_equal(batch[0], want[0])
            np.testing.assert_array_equal(batch[1], batch[0][:, 0] ** 2)
            assert batch[3] == want[3]
    pids = {int(b[2][0]) for epoch in got for b in epoch}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    # open_resources ran once per worker process, for both epochs.
    assert {int(b[2][1]) for epoch in got for b in epoch} == {1}


@pytest.mark.timeout(60)
def test_worker_exception_is_reraised_with_batch_and_traceback():
    data = Failing(
        seed=0, workers=2, use_multiprocessing=True, start_method="fork"
    )
    with pytest.raises(ValueError, match="bad sample") as info:
        list(data)
    cause = str(info.value.__cause__)
    assert "batch 3 (epoch 0)" in cause and "worker process" in cause
    assert "in __getitem__" in cause and "bad sample" in cause
    assert not multiprocessing.active_children()


class KilledInFit(Regression):
    def __getitem__(self, index):
        if index == 3 and self.epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


@pytest.mark.timeout(60)
def test_worker_killed_mid_epoch_in_fit_raises_instead_of_hanging():
    data = KilledInFit(
        seed=0, workers=2, use_multiprocessing=True, start_method="fork"
    )
    start = time.monotonic()
    # On TensorFlow the error arrives wrapped by tf.data, with our message.
    with pytest.raises(Exception, match="died unexpectedly.*SIGKILL"):
        tiny_model().fit(data, epochs=3, shuffle=False, verbose=0)
    assert time.monotonic() - start < 20
    assert not multiprocessing.active_children()


class Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            raise KeyboardInterrupt


@pytest.mark.timeout(60)
def test_interrupted_fit_leaves_no_worker_behind(monkeypatch):
    monkeypatch.setattr(keras_cool.data._pools, "IDLE_TIMEOUT", 0.3)
    data = Regression(
        seed=0, workers=2, use_multiprocessing=True, start_method="fork"
    )
    with pytest.raises(KeyboardInterrupt):
        tiny_model().fit(
            data, epochs=2, shuffle=False, verbose=0, callbacks=[Interrupt()]
        )
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()
    # The pool starts again when needed.
    assert len(list(data)) == 5
    assert not multiprocessing.active_children()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("interrupted", [False, True])
def test_pool_closed_by_another_thread_mid_request(monkeypatch, interrupted):
    # Ctrl-C (interrupted) or the idle reaper closes the pool, and its
    # pipes, from another thread while the backend's data thread sends to
    # it: the request goes on without that pool (a new pool, or computed
    # here until the next epoch after Ctrl-C), instead of failing with
    # "OSError: handle is closed".
    from keras_cool.data import _process_pool

    send = _process_pool.ProcessPool._send
    closed = []

    def send_after_close(self, *args):
        if not closed:
            closed.append(self)
            self.interrupted = interrupted
            self.close()
        return send(self, *args)

    monkeypatch.setattr(_process_pool.ProcessPool, "_send", send_after_close)
    data = Noise(
        seed=0, workers=2, use_multiprocessing=True, start_method="fork"
    )
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        got = thread.submit(epochs_of, data, 1).result(timeout=50)
    assert closed and closed[0].closed
    np.testing.assert_array_equal(got, epochs_of(Noise(seed=0), 1))
    assert not multiprocessing.active_children()


@pytest.mark.timeout(60)
def test_idle_reaper_never_closes_a_pool_while_its_workers_start(monkeypatch):
    # A slow start (a loaded machine) once let the reaper close a pool
    # half-way through starting it; the workers started after that were
    # never stopped.
    from keras_cool.data import _process_pool

    monkeypatch.setattr(_pools, "IDLE_TIMEOUT", 0.05)
    start = _process_pool.ProcessPool._start

    def slow_start(self, *args):
        time.sleep(0.5)
        return start(self, *args)

    monkeypatch.setattr(_process_pool.ProcessPool, "_start", slow_start)
    _pools.ensure_reaper()
    data = Regression(
        seed=0, workers=2, use_multiprocessing=True, start_method="fork"
    )
    assert len(list(data)) == 5
    assert not multiprocessing.active_children()
