"""Elastic resume: a state saved by N processes or workers resumes with M.

"The same global order": batches depend only on (seed, epoch, index), and
the epoch's order of indices is the same on every host, so a resumed run
is compared with an uninterrupted one batch by batch.
"""

import json
import multiprocessing

import numpy as np
import pytest

from tests.data.datasets import Noise

KWARGS = dict(num_batches=9, shuffle=True)


def whole_epoch(seed, epoch):
    """The uninterrupted epoch `epoch` of one process, in global order."""
    data = Noise(seed=seed, **KWARGS)
    for _ in range(epoch):
        list(data)
    return np.stack(list(data))


def head(data, count):
    data.on_epoch_begin()
    return [data[i] for i in range(count)]


def test_state_saved_by_two_processes_resumes_in_one():
    states, heads = [], []
    for p in range(2):
        data = Noise(seed=7, shard=(p, 2), **KWARGS)
        list(data)  # epoch 0 done: resume inside epoch 1
        heads.append(head(data, 2))
        states.append(json.loads(json.dumps(data.get_state())))
    assert states[0] == dict(states[1], shard=[0, 2])
    assert states[0]["position"] == 4 and states[0]["epoch"] == 1
    resumed = Noise(**KWARGS)  # one process, no shard
    resumed.set_state(states[1])
    assert len(resumed) == 5
    tail = list(resumed)
    want = whole_epoch(7, 1)
    # Shard p took global positions p and p + 2; the rest follows on.
    np.testing.assert_array_equal(np.stack(heads[0]), want[[0, 2]])
    np.testing.assert_array_equal(np.stack(heads[1]), want[[1, 3]])
    np.testing.assert_array_equal(np.stack(tail), want[4:])
    indices = [int(b[0]) for b in heads[0] + heads[1] + tail]
    assert sorted(indices) == list(range(9))  # every batch exactly once
    assert resumed.get_state()["epoch"] == 2  # then the next epoch, whole
    np.testing.assert_array_equal(np.stack(list(resumed)), whole_epoch(7, 2))


@pytest.mark.timeout(120)
def test_state_saved_with_one_worker_resumes_with_two_processes():
    data = Noise(seed=3, **KWARGS)  # one worker, in the calling thread
    first = head(data, 4)
    state = data.get_state()
    assert state["position"] == 4
    resumed = Noise(
        workers=2, use_multiprocessing=True, start_method="fork", **KWARGS
    )
    resumed.set_state(state)
    tail = list(resumed)
    resumed.close()
    assert not multiprocessing.active_children()
    want = whole_epoch(3, 0)
    np.testing.assert_array_equal(np.stack(first + tail), want)
    indices = [int(b[0]) for b in first + tail]
    assert sorted(indices) == list(range(9))


def test_state_saved_by_one_process_resumes_in_two():
    data = Noise(seed=5, **KWARGS)
    first = head(data, 3)
    state = data.get_state()
    tails = []
    for p in range(2):
        resumed = Noise(shard=(p, 2), **KWARGS)
        resumed.set_state(state)
        tails.append(np.stack(list(resumed)))
    want = whole_epoch(5, 0)
    # 6 left: positions 3, 5, 7 on shard 0 and 4, 6, 8 on shard 1.
    np.testing.assert_array_equal(tails[0], want[[3, 5, 7]])
    np.testing.assert_array_equal(tails[1], want[[4, 6, 8]])
    np.testing.assert_array_equal(np.stack(first), want[:3])


def test_version_1_state_of_a_shard_is_read_as_its_global_position():
    # Version 1 counted the batches of its own shard: 2 of shard (1, 2).
    state = {
        "version": 1,
        "seed": 4,
        "epoch": 0,
        "position": 2,
        "num_batches": 9,
        "shuffle": True,
        "shard": [1, 2],
    }
    resumed = Noise(**KWARGS)
    resumed.set_state(state)
    assert resumed.get_state()["position"] == 4
    np.testing.assert_array_equal(
        np.stack(list(resumed)), whole_epoch(4, 0)[4:]
    )
