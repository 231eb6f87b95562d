"""keras_cool.Sequence: seeded batches, epochs, resources, workers, state.

Process-based tests are few and small (starting processes that import Keras
is slow on a small machine); most use start_method="fork", one uses the
default ("forkserver"). Classes live at module level so worker processes
can import them.
"""

import multiprocessing
import os
import pickle
import random
import signal
import time

import h5py
import keras
import numpy as np
import pytest

import keras_cool

pytestmark = pytest.mark.filterwarnings(
    "ignore:os.fork\\(\\) was called:RuntimeWarning"
)


class Noise(keras_cool.Sequence):
    """Each batch: its index, epoch, and draws from every random source."""

    def __init__(self, num_batches=6, **kwargs):
        super().__init__(**kwargs)
        self.count = num_batches

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return np.array(
            [
                index,
                self.epoch,
                self.rng.integers(10**9),
                np.random.randint(10**9),
                random.randrange(10**9),
            ]
        )


class Legacy(keras_cool.Sequence):
    """Old-style code: global RNG in __getitem__ and in on_epoch_end."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.order = np.arange(5)

    def __len__(self):
        return 5

    def __getitem__(self, index):
        return np.array([self.order[index], np.random.randint(10**9)])

    def on_epoch_end(self):
        np.random.shuffle(self.order)


class Regression(keras_cool.Sequence):
    """A tiny regression problem whose inputs are random per batch."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def __len__(self):
        return 5

    def __getitem__(self, index):
        x = self.rng.normal(size=(8, 4)).astype("float32") + index
        y = x.sum(axis=1, keepdims=True) * 0.1
        return x, y


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


def tiny_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    net = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    net.compile(keras.optimizers.SGD(0.05), "mse")
    return net


def epochs_of(dataset, count=2):
    out = [np.stack(list(dataset)) for _ in range(count)]
    dataset.close()
    return np.stack(out)


# ------------------------------------------------------------ in-process


def test_keras_sees_an_in_process_dataset():
    data = Noise(workers=4, use_multiprocessing=True, max_queue_size=3)
    assert data.workers == 1 and data.use_multiprocessing is False
    assert (data.num_workers, data.use_processes) == (4, True)
    assert data.max_queue_size == 3
    data.workers = 2
    data.use_multiprocessing = False
    assert (data.num_workers, data.use_processes) == (2, False)
    assert isinstance(data, keras.utils.PyDataset)
    assert keras_cool.Sequence is keras_cool.data.Sequence


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": -1}, "workers must be >= 0"),
        ({"max_queue_size": 0}, "max_queue_size must be >= 1"),
        ({"seed": "x"}, "seed must be an int"),
        ({"shard": (2, 2)}, "shard index must be < count"),
        ({"shard": 3}, "shard must be a pair"),
        ({"start_method": "teleport"}, "start_method='teleport'"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Noise(**kwargs)


def test_batch_randomness_depends_on_seed_epoch_and_index():
    np.random.seed(7)
    random.seed(7)
    before = (np.random.get_state()[1].copy(), random.getstate())
    a = epochs_of(Noise(seed=1))
    b = epochs_of(Noise(seed=1))
    c = epochs_of(Noise(seed=2))
    np.testing.assert_array_equal(a, b)
    assert a[0, :, 1].tolist() == [0] * 6 and a[1, :, 1].tolist() == [1] * 6
    for column in (2, 3, 4):  # rng, np.random, random
        draws = a[:, :, column].ravel()
        assert len(set(draws)) == draws.size, "a draw repeated"
        assert not np.array_equal(a[:, :, column], c[:, :, column])
    # The caller's global generators are left as they were.
    np.testing.assert_array_equal(np.random.get_state()[1], before[0])
    assert random.getstate() == before[1]
    # seed=None draws the seed from the global NumPy generator.
    np.random.seed(3)
    first = Noise().seed
    np.random.seed(3)
    assert Noise().seed == first


def test_threads_give_the_same_rng_stream():
    inline = epochs_of(Noise(seed=5, num_batches=9))
    threads = epochs_of(Noise(seed=5, num_batches=9, workers=3))
    # Worker threads share the global generators: only self.rng is exact.
    np.testing.assert_array_equal(threads[..., :3], inline[..., :3])


def test_epoch_advances_only_after_every_batch_was_served():
    data = Noise(seed=0, num_batches=4)
    data.on_epoch_end()  # Keras calls this before training starts
    data.on_epoch_begin()  # a peek at the first batch (symbolic build)
    data[0]
    data.on_epoch_end()
    assert data.epoch == 0
    data.on_epoch_begin()
    for i in range(4):
        assert data[i][1] == 0
    data.on_epoch_end()
    assert data.epoch == 1
    with pytest.raises(IndexError, match="out of range"):
        data[4]
    with pytest.raises(RuntimeError, match="only available inside"):
        data.rng


def test_shuffle_is_a_seeded_permutation_per_epoch():
    a = epochs_of(Noise(seed=4, num_batches=8, shuffle=True), count=3)
    b = epochs_of(Noise(seed=4, num_batches=8, shuffle=True), count=3)
    np.testing.assert_array_equal(a, b)
    orders = a[:, :, 0]
    for order in orders:
        assert sorted(order) == list(range(8))
    assert len({tuple(o) for o in orders}) == 3
    plain = Noise(seed=4, num_batches=8)
    first = plain.epoch_permutation(100)
    assert sorted(first) == list(range(100))
    np.testing.assert_array_equal(first, plain.epoch_permutation(100))
    list(plain)
    assert not np.array_equal(first, plain.epoch_permutation(100))


def test_shards_are_disjoint_and_equal_in_length():
    shards = [
        epochs_of(Noise(seed=9, num_batches=11, shuffle=True, shard=(i, 3)))
        for i in range(3)
    ]
    for epoch in range(2):
        indices = [s[epoch, :, 0].tolist() for s in shards]
        assert [len(i) for i in indices] == [3, 3, 3]
        together = sum(indices, [])
        assert len(set(together)) == 9


def test_get_state_and_set_state_resume_mid_epoch():
    full = epochs_of(Noise(seed=3, num_batches=7, shuffle=True), count=3)
    data = Noise(seed=3, num_batches=7, shuffle=True)
    list(data)
    data.on_epoch_begin()
    head = [data[i] for i in range(4)]
    state = data.get_state()
    assert state == {"seed": 3, "epoch": 1, "position": 4}
    resumed = Noise(num_batches=7, shuffle=True)
    resumed.set_state(pickle.loads(pickle.dumps(state)))
    assert len(resumed) == 3
    tail = np.stack(list(resumed))
    np.testing.assert_array_equal(np.stack(head), full[1, :4])
    np.testing.assert_array_equal(tail, full[1, 4:])
    np.testing.assert_array_equal(np.stack(list(resumed)), full[2])
    with pytest.raises(ValueError, match="keys"):
        resumed.set_state({"epoch": 1})


def test_legacy_global_rng_code_is_reproducible():
    a = epochs_of(Legacy(seed=2), count=3)
    b = epochs_of(Legacy(seed=2), count=3)
    np.testing.assert_array_equal(a, b)
    orders = a[:, :, 0]
    assert len({tuple(o) for o in orders}) > 1  # on_epoch_end shuffled
    assert len(set(a[:, :, 1].ravel())) == a[:, :, 1].size


class Base(Noise):
    def __getitem__(self, index):
        return super().__getitem__(index) * 2


class Child(Base):
    def __getitem__(self, index):
        assert len(self) == 6  # user code sees its own length
        return super().__getitem__(index) + 1


class Mixin:
    def __len__(self):
        return 3

    def __getitem__(self, index):
        return np.array([index, self.rng.integers(10**9)])


class Mixed(Mixin, keras_cool.Sequence):
    pass


def test_subclasses_super_calls_and_mixins_are_wrapped():
    plain = epochs_of(Noise(seed=8), count=1)
    child = epochs_of(Child(seed=8), count=1)
    np.testing.assert_array_equal(child, plain * 2 + 1)
    mixed = epochs_of(Mixed(seed=8, shard=(1, 2)), count=1)
    assert mixed[0, :, 0].tolist() == [1]


class Endless(keras_cool.Sequence):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return np.array([index, self.rng.integers(10**9)])


class NoSuper(keras_cool.Sequence):
    num_batches = 3

    def __init__(self):
        pass

    def __getitem__(self, index):
        return np.array([index, self.rng.integers(10**9)])


def test_missing_super_init_warns_and_still_works():
    data = NoSuper()
    with pytest.warns(UserWarning, match="super"):
        batches = list(data)
    assert len(batches) == 3 and data.seed is not None
    np.testing.assert_array_equal(list(data)[0][0], 0)


def test_infinite_dataset_with_shards():
    data = Endless(seed=1, shard=(1, 3))
    assert data.num_batches is None
    assert [data[i][0] for i in range(3)] == [1, 4, 7]
    with pytest.raises(ValueError, match="finite"):
        Endless(shuffle=True)[0]


def test_worker_thread_exception_names_the_batch():
    data = Failing(seed=0, workers=2)
    with pytest.raises(ValueError, match="bad sample") as info:
        list(data)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "batch 3 (epoch 0)" in notes
    with pytest.raises(ValueError, match="bad sample") as info:
        Failing(seed=0)[3]
    assert "batch 3" in "\n".join(getattr(info.value, "__notes__", []))


def test_out_of_order_requests_warn_once_and_stay_exact():
    inline = epochs_of(Noise(seed=6, num_batches=5), count=1)[0]
    data = Noise(seed=6, num_batches=5, workers=2, max_queue_size=1)
    data.on_epoch_begin()
    with pytest.warns(UserWarning, match="out of order"):
        got = [data[i] for i in (0, 3, 1, 4, 2)]
    data.on_epoch_end()
    data.close()
    for i, batch in zip((0, 3, 1, 4, 2), got):
        np.testing.assert_array_equal(batch[:3], inline[i, :3])


class Unpicklable(Noise):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transform = lambda x: x


def test_unpicklable_attribute_is_named():
    data = Unpicklable(workers=2, use_multiprocessing=True, start_method="fork")
    with pytest.raises(TypeError, match="`transform`.*open_resources"):
        list(data)
    assert not multiprocessing.active_children()


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


def test_fit_consumes_exactly_the_expected_batches():
    reference = tiny_model()
    expected = Regression(seed=11, shuffle=True)
    for _ in range(2):
        for x, y in expected:
            reference.train_on_batch(x, y)
    for kwargs in ({}, {"workers": 2}):
        net = tiny_model()
        data = Regression(seed=11, shuffle=True, **kwargs)
        net.fit(data, epochs=2, shuffle=False, verbose=0)
        data.close()
        for got, want in zip(net.get_weights(), reference.get_weights()):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert data.epoch == 2


class Pair(Regression):
    def __len__(self):
        return 2


def test_fit_counts_epochs_even_for_two_batches():
    # TensorFlow reads two batches for the tensor spec before training and
    # JAX/torch peek at the first one: neither may count as an epoch.
    data = Pair(seed=0)
    tiny_model().fit(data, epochs=3, shuffle=False, verbose=0)
    assert data.epoch == 3
    data[0]  # outside an epoch: does not count either
    assert data.get_state() == {"seed": 0, "epoch": 3, "position": 0}


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
