"""keras_cool.Sequence: the user contract (seeded batches, epochs, fit).

Order and state are in test_order.py, workers, failures and resources in
test_workers.py.
"""

import random

import keras
import numpy as np
import pytest

import keras_cool
from tests.data.datasets import Noise
from tests.data.datasets import Regression
from tests.data.datasets import epochs_of
from tests.data.datasets import tiny_model


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
    assert data.get_state() == {
        "version": 2,
        "seed": 0,
        "epoch": 3,
        "position": 0,
        "num_batches": 2,
        "shuffle": False,
        "shard": None,
    }


SEEN = []


class Counting(Regression):
    """Its epoch hook counts epochs; every batch records the count."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0
        self.count = None
        self.lengths = 0

    def __len__(self):
        self.lengths += 1
        return 5

    def on_epoch_begin(self):
        self.count = self.calls
        self.calls += 1

    def __getitem__(self, index):
        SEEN.append((self.epoch, self.count))
        x, y = super().__getitem__(index)
        return x + self.count, y


def test_epoch_hook_runs_once_per_epoch_before_its_batches():
    # Keras peeks at a batch before the first epoch: TensorFlow without
    # calling on_epoch_begin, JAX and torch calling it once more.
    SEEN.clear()
    data = Counting(seed=0)
    tiny_model().fit(data, epochs=3, shuffle=False, verbose=0)
    assert data.calls == 3
    assert {count for _, count in SEEN} == {0, 1, 2}
    assert all(epoch == count for epoch, count in SEEN)
    # The user's __len__ is read once per epoch and once after the hook.
    assert data.lengths <= 2 * 3 + 1


@pytest.mark.timeout(120)
def test_epoch_hook_state_reaches_persistent_worker_processes():
    data = Counting(
        seed=0,
        workers=2,
        use_multiprocessing=True,
        persistent_workers=True,
        start_method="fork",
    )
    plain = Regression(seed=0)
    for epoch in range(3):
        for (x, _), (want, _) in zip(data, plain):
            np.testing.assert_allclose(x, want + epoch, rtol=1e-6)
    data.close()
    assert data.calls == 3
