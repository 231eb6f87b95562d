"""Worker processes set their own memory policy (keras_cool.data._memory):
freed memory is kept for the next batch, with no environment variable from
the user, on every start method."""

import multiprocessing

import numpy as np
import pytest

import keras_cool
from keras_cool.data import _memory

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:os.fork\\(\\) was called:RuntimeWarning"
    ),
    pytest.mark.skipif(
        _memory._glibc() is None, reason="the policy is for glibc only"
    ),
]


class Policy(keras_cool.Sequence):
    """Each batch: whether its process applied the policy (glibc accepted
    both mallopt calls)."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return np.array([float(_memory.applied)])


@pytest.mark.parametrize(
    "start_method",
    [
        m
        for m in ("fork", "forkserver", "spawn")
        if m in multiprocessing.get_all_start_methods()
    ],
)
def test_worker_applies_the_policy_on_every_start_method(
    start_method, monkeypatch
):
    for name in _memory.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert not _memory.applied  # the main process is left alone
    data = Policy(
        workers=1, use_multiprocessing=True, start_method=start_method
    )
    try:
        batches = list(data)
    finally:
        data.close()
    assert [float(b[0]) for b in batches] == [1.0, 1.0]


def test_policy_keeps_a_setting_made_by_the_user(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert not _memory.keep_freed_memory()
    assert not _memory.applied
