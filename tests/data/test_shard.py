"""Sharded Sequences: one global order, disjoint equal shards, resumable.

What a multi-process job needs of its input: every process draws the same
global order, the shards are disjoint and equal-sized and together cover
the epoch (the last `len % count` batches are dropped), a batch's data and
randomness depend only on its global index, and a resumed job continues
at the same global position on every process.
"""

import json

import numpy as np
import pytest

import keras_cool
from tests.data.datasets import Noise
from tests.data.datasets import epochs_of

BATCHES = 10


def shards(count, **kwargs):
    kwargs.setdefault("num_batches", BATCHES)
    return [epochs_of(Noise(shard=(p, count), **kwargs)) for p in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3])
def test_shards_are_disjoint_equal_and_cover_the_epoch(count):
    whole = epochs_of(Noise(num_batches=BATCHES, shuffle=True, seed=7))
    parts = shards(count, shuffle=True, seed=7)
    per_process = BATCHES // count
    for epoch in range(2):
        indices = [part[epoch, :, 0] for part in parts]
        assert {len(i) for i in indices} == {per_process}
        together = np.concatenate(indices)
        assert len(set(together)) == per_process * count  # disjoint
        # Global step k is position k of every shard, in process order:
        # the global order, minus the dropped remainder.
        stacked = np.stack([part[epoch] for part in parts], axis=1)
        global_rows = stacked.reshape(per_process * count, -1)
        used = whole[epoch, : per_process * count]
        # Same batches, same per-batch randomness (columns 2-4).
        np.testing.assert_array_equal(global_rows, used)
    dropped = set(whole[0, per_process * count :, 0])
    assert dropped.isdisjoint(parts[0][0, :, 0])
    assert not np.array_equal(whole[0, :, 0], whole[1, :, 0])  # reshuffled


def test_auto_shard_is_the_process_when_the_data_is_used(monkeypatch):
    data = Noise(num_batches=BATCHES, shard="auto", seed=1)
    assert data.shard == (0, 1)  # no multi-process job here
    assert len(data) == BATCHES
    monkeypatch.setattr(
        "keras_cool.data.sequence.process_shard", lambda: (1, 3)
    )
    assert data.shard == (1, 3)
    assert len(data) == 3
    np.testing.assert_array_equal(
        epochs_of(data, count=1)[0],
        epochs_of(Noise(num_batches=BATCHES, shard=(1, 3), seed=1), 1)[0],
    )
    assert data.get_state()["shard"] == [1, 3]


def test_bad_shard_names_auto():
    with pytest.raises(ValueError, match='"auto"'):
        Noise(shard="everything")


def test_resumed_shards_continue_the_global_order():
    kwargs = dict(num_batches=9, shuffle=True, seed=11)
    count, stop = 2, 3
    # Uninterrupted: two epochs on each of 2 processes.
    want = shards(count, **kwargs)
    states, heads = [], []
    for p in range(count):
        data = Noise(shard=(p, count), **kwargs)
        first = np.stack(list(data))
        data.on_epoch_begin()
        head = [data[i] for i in range(stop)]
        heads.append(np.stack(head))
        np.testing.assert_array_equal(first, want[p][0])
        states.append(json.loads(json.dumps(data.get_state())))
        data.close()
    assert {s["position"] for s in states} == {stop * count}  # global
    assert {s["epoch"] for s in states} == {1}
    for p, state in enumerate(states):
        resumed = Noise(shard=(p, count), num_batches=9, shuffle=True)
        resumed.set_state(state)
        tail = np.stack(list(resumed))
        resumed.close()
        np.testing.assert_array_equal(
            np.concatenate([heads[p], tail]), want[p][1]
        )
    # Saved by 2 processes, resumed by 3: the rest of the global order.
    tails = []
    for p in range(3):
        resumed = Noise(shard=(p, 3), num_batches=9, shuffle=True)
        resumed.set_state(states[0])
        tails.append(np.stack(list(resumed)))
    assert [len(t) for t in tails] == [1, 1, 1]  # 9 - 2 * 3 = 3 left


def test_sequence_accepts_auto_in_subclass_without_init():
    class Bare(keras_cool.Sequence):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return np.array([index])

    assert Bare().shard is None
