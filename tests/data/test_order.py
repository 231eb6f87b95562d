"""keras_cool.Sequence: epoch order, shuffling, shards and saved state."""

import json
import pickle

import numpy as np
import pytest

import keras_cool
from tests.data.datasets import Noise
from tests.data.datasets import epochs_of


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
    assert state == {
        "version": 2,
        "seed": 3,
        "epoch": 1,
        "position": 4,
        "num_batches": 7,
        "shuffle": True,
        "shard": None,
    }
    resumed = Noise(num_batches=7, shuffle=True)
    resumed.set_state(pickle.loads(pickle.dumps(state)))
    assert len(resumed) == 3
    tail = np.stack(list(resumed))
    np.testing.assert_array_equal(np.stack(head), full[1, :4])
    np.testing.assert_array_equal(tail, full[1, 4:])
    np.testing.assert_array_equal(np.stack(list(resumed)), full[2])
    with pytest.raises(ValueError, match="keys"):
        resumed.set_state({"epoch": 1})


class Endless(keras_cool.Sequence):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return np.array([index, self.rng.integers(10**9)])


def test_infinite_dataset_with_shards():
    data = Endless(seed=1, shard=(1, 3))
    assert data.num_batches is None
    assert [data[i][0] for i in range(3)] == [1, 4, 7]
    with pytest.raises(ValueError, match="finite"):
        Endless(shuffle=True)[0]


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


def test_state_round_trips_through_json_and_accepts_the_unversioned_dict():
    data = Noise(seed=5, num_batches=9, shuffle=True, shard=(1, 2))
    data.on_epoch_begin()
    head = [data[i] for i in range(2)]
    state = data.get_state()
    assert state["shard"] == [1, 2] and state["num_batches"] == 9
    resumed = Noise(num_batches=9, shuffle=True, shard=(1, 2))
    resumed.set_state(json.loads(json.dumps(state)))
    assert resumed.get_state() == state
    reference = Noise(seed=5, num_batches=9, shuffle=True, shard=(1, 2))
    want = list(reference)
    np.testing.assert_array_equal(np.stack(head), np.stack(want[:2]))
    np.testing.assert_array_equal(np.stack(list(resumed)), np.stack(want[2:]))
    # The unversioned dict of earlier keras_cool versions still resumes.
    legacy = Noise(num_batches=9, shuffle=True, shard=(1, 2))
    legacy.set_state({"seed": 5, "epoch": 0, "position": 2})
    np.testing.assert_array_equal(np.stack(list(legacy)), np.stack(want[2:]))


def test_state_of_an_unknown_version_is_rejected():
    data = Noise(seed=1)
    state = dict(data.get_state(), version=3)
    with pytest.raises(ValueError, match="version 3.*reads versions 1 and 2"):
        data.set_state(state)
    with pytest.raises(ValueError, match="keys"):
        data.set_state(dict(data.get_state(), extra=0))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_batches": 7}, "num_batches=6"),
        ({"shuffle": True}, "shuffle=False"),
    ],
)
def test_state_saved_for_other_batches_is_rejected(kwargs, field):
    state = Noise(seed=1).get_state()
    other = Noise(seed=1, **kwargs)
    before = other.get_state()
    with pytest.raises(ValueError, match=f"saved with {field}.*Build"):
        other.set_state(state)
    assert other.get_state() == before  # nothing changed
