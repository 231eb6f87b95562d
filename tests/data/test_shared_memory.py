"""Large arrays of a batch travel from worker processes in shared memory:
same batches, blocks reused, and no block name left in /dev/shm on any way
out (a normal end, an error in `fit`, a killed worker, Ctrl-C)."""

import multiprocessing
import os
import signal
import sys
import time
from multiprocessing import shared_memory

import keras
import numpy as np
import pytest

import keras_cool
from keras_cool.data import _pools
from keras_cool.data import _shared
from tests.data.datasets import tiny_model
from tests.data.test_faults import interrupt_once

SHM = "/dev/shm"
pytestmark = pytest.mark.skipif(
    not os.path.isdir(SHM), reason="needs /dev/shm (Linux)"
)


def blocks_of(pid):
    """Names of this keras_cool's blocks made for the main process `pid`."""
    return [n for n in os.listdir(SHM) if n.startswith(f"kc{pid}_")]


def wait_for_no_blocks(pid, seconds=10.0):
    deadline = time.monotonic() + seconds
    while blocks_of(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return blocks_of(pid)


class Large(keras_cool.Sequence):
    """Batches of (16, 4) float32 inputs: above the lowered threshold."""

    def __init__(self, kill_at=None, **kwargs):
        super().__init__(**kwargs)
        self.kill_at = kill_at

    def __len__(self):
        return 6

    def __getitem__(self, index):
        if self.kill_at == (self.epoch, index):
            os.kill(os.getpid(), signal.SIGKILL)
        x = self.rng.normal(size=(16, 4)).astype("float32") + index
        return x, x.sum(axis=1, keepdims=True) * 0.1


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(_shared, "MIN_BYTES", 64)


def processes():
    return dict(workers=2, use_multiprocessing=True, start_method="fork")


@pytest.mark.timeout(120)
def test_batches_come_through_reused_blocks_and_stay_intact(small_threshold):
    inline = Large(seed=2)
    want = [list(inline) for _ in range(3)]
    data = Large(seed=2, persistent_workers=True, **processes())
    kept = list(data)  # held while later epochs reuse the free blocks
    assert all(isinstance(x.base, _shared._View) for x, _ in kept)
    for epoch in (1, 2):
        for (x, y), (wx, wy) in zip(data, want[epoch]):
            np.testing.assert_array_equal(x, wx)
            np.testing.assert_array_equal(y, wy)
    pool = data._kc_rt.pool
    assert len(pool.blocks.mapped) < 3 * 6  # epochs 1 and 2 reused blocks
    data.close()
    for (x, y), (wx, wy) in zip(kept, want[0]):
        np.testing.assert_array_equal(x, wx)
        np.testing.assert_array_equal(y, wy)
    assert not wait_for_no_blocks(os.getpid())
    assert not multiprocessing.active_children()


@pytest.mark.timeout(120)
def test_no_block_left_after_fit(small_threshold):
    data = Large(seed=0, **processes())
    tiny_model().fit(data, epochs=2, shuffle=False, verbose=0)
    assert not blocks_of(os.getpid())
    data.close()


class Fails(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            raise ValueError("callback failed")


@pytest.mark.timeout(120)
def test_no_block_left_after_an_error_in_fit(small_threshold, monkeypatch):
    monkeypatch.setattr(_pools, "IDLE_TIMEOUT", 0.3)  # Keras never ends
    data = Large(seed=0, **processes())  # the epoch: the reaper closes it
    with pytest.raises(ValueError, match="callback failed"):
        tiny_model().fit(data, epochs=2, verbose=0, callbacks=[Fails()])
    assert not wait_for_no_blocks(os.getpid())
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()


@pytest.mark.timeout(120)
def test_no_block_left_after_a_worker_is_killed(small_threshold):
    data = Large(seed=0, kill_at=(1, 3), **processes())
    with pytest.raises(Exception, match="died unexpectedly.*SIGKILL"):
        tiny_model().fit(data, epochs=3, shuffle=False, verbose=0)
    assert not blocks_of(os.getpid())
    assert not multiprocessing.active_children()


def test_empty_block_of_a_worker_killed_while_making_it_is_removed():
    # A worker killed between creating a block and sizing it leaves an
    # empty block, which cannot be mapped; the pool still removes it and
    # the blocks numbered after it.
    prefix = _shared.new_prefix()
    blocks = _shared.Blocks(prefix, threshold=64)
    made = _shared.WorkerBlocks(prefix, 0, threshold=64)
    made.pack(np.ones(64, "float32"))  # block 0, never sent
    empty = os.path.join(SHM, f"{prefix}_0_1")
    os.close(os.open(empty, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    made.blocks[2] = shared_memory.SharedMemory(
        f"{prefix}_0_2", create=True, size=64
    )
    assert len(blocks_of(os.getpid())) == 3
    blocks.unlink_rest([0])
    made.close()
    assert not blocks_of(os.getpid())


LARGE_INTERRUPTED = """
import os
import sys
import time
import multiprocessing
import numpy as np
import keras
import keras_cool
from keras_cool.data import _shared

_shared.MIN_BYTES = 64
print("PID", os.getpid(), flush=True)


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


data = Slow(workers=2, use_multiprocessing=True)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
model.compile("sgd", "mse")
try:
    model.fit(data, epochs=100, verbose=0, callbacks=[Ready()])
except KeyboardInterrupt:
    caught = time.monotonic()
    print("CAUGHT", flush=True)
while multiprocessing.active_children() and time.monotonic() - caught < 5:
    time.sleep(0.02)
names = [n for n in os.listdir("/dev/shm") if n.startswith(f"kc{os.getpid()}_")]
print("BLOCKS_LEFT", len(names), flush=True)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="process groups, pgrep")
@pytest.mark.timeout(300)
def test_no_block_left_after_ctrl_c(tmp_path, repo_root):
    path = tmp_path / "interrupted.py"
    path.write_text(LARGE_INTERRUPTED)
    out, left = interrupt_once(path, repo_root)
    assert "CAUGHT" in out and "BLOCKS_LEFT 0" in out, out
    assert not left
    pid = out.split("PID")[1].split()[0]
    assert not blocks_of(pid)  # nor after the process exited


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "method",
    [
        m
        for m in ("forkserver", "spawn")
        if m in multiprocessing.get_all_start_methods()
    ],
)
def test_every_start_method_moves_batches_in_shared_memory(
    method, small_threshold
):
    want = list(Large(seed=5))
    data = Large(
        seed=5, workers=1, use_multiprocessing=True, start_method=method
    )
    got = list(data)
    assert all(isinstance(x.base, _shared._View) for x, _ in got)
    for (x, y), (wx, wy) in zip(got, want):
        np.testing.assert_array_equal(x, wx)
        np.testing.assert_array_equal(y, wy)
    data.close()
    assert not wait_for_no_blocks(os.getpid())


def test_threshold_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(_shared.ENV, "off")
    assert _shared.threshold() is None
    monkeypatch.setenv(_shared.ENV, "4096")
    assert _shared.threshold() == 4096
    monkeypatch.setenv(_shared.ENV, "big")
    with pytest.raises(ValueError, match="KERAS_COOL_SHM_MIN_BYTES.*off"):
        _shared.threshold()


@pytest.mark.timeout(120)
def test_pipe_only_when_shared_memory_is_off(monkeypatch, small_threshold):
    monkeypatch.setenv(_shared.ENV, "off")
    # forkserver: with "fork" this test hung in 2 of 7 full TensorFlow
    # runs (workers alive, no batch sent); not yet understood.
    data = Large(seed=1, **dict(processes(), start_method="forkserver"))
    got = list(data)
    data.close()
    assert not any(isinstance(x.base, _shared._View) for x, _ in got)
    for (x, _), (wx, _) in zip(got, list(Large(seed=1))):
        np.testing.assert_array_equal(x, wx)
