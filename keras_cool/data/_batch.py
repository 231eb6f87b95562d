"""Computing one batch of a `keras_cool.Sequence`, wherever it runs.

The same function runs in the calling thread, in a worker thread and in a
worker process, so a batch's randomness depends only on
`(seed, epoch, index)`:

- `dataset.rng` is a `numpy.random.Generator` built from
  `SeedSequence(seed, spawn_key=(BATCH, epoch, index))`;
- the global `numpy.random` and `random` generators are reseeded from the
  same sequence before the batch and restored after it (not in worker
  threads, which share them).

A thread-local stack records which dataset is running user code, so the
wrappers around user methods know when to call the user's code directly.
"""

import os
import pickle
import random
import threading

import numpy as np

# spawn_key tags keep the streams of different uses apart.
BATCH, ORDER, PERMUTATION, HOOK = 0, 1, 2, 3

_LOCAL = threading.local()


def _stack():
    if not hasattr(_LOCAL, "stack"):
        _LOCAL.stack = []
    return _LOCAL.stack


def current(dataset):
    """The (rng, epoch) of the user code `dataset` runs now, else None."""
    stack = _stack()
    if stack and stack[-1][0] is dataset:
        return stack[-1][1:]
    return None


class raw:
    """Context: `dataset` runs user code that needs no randomness."""

    def __init__(self, dataset, epoch):
        self.dataset = dataset
        self.epoch = epoch

    def __enter__(self):
        _stack().append((self.dataset, None, self.epoch))

    def __exit__(self, *exc):
        _stack().pop()
        return False


def seed_sequence(seed, *key):
    return np.random.SeedSequence(seed, spawn_key=key)


class user_code:
    """Context: `dataset` runs user code with a seeded `rng` and `epoch`.

    With `reseed_globals`, the global `numpy.random` and `random` states are
    seeded from the same sequence and restored on exit.
    """

    def __init__(self, dataset, epoch, key, reseed_globals):
        self.dataset = dataset
        self.epoch = epoch
        self.key = key
        self.reseed_globals = reseed_globals
        self.saved = None

    def __enter__(self):
        sequence = seed_sequence(self.dataset.seed, *self.key)
        rng_seq, np_seq, py_seq = sequence.spawn(3)
        rng = np.random.Generator(np.random.PCG64(rng_seq))
        if self.reseed_globals:
            self.saved = (np.random.get_state(), random.getstate())
            np.random.seed(np_seq.generate_state(4))
            random.seed(int(py_seq.generate_state(1, np.uint64)[0]))
        _stack().append((self.dataset, rng, self.epoch))
        return rng

    def __exit__(self, *exc):
        _stack().pop()
        if self.saved is not None:
            np.random.set_state(self.saved[0])
            random.setstate(self.saved[1])
            self.saved = None
        return False


def open_resources(dataset, runtime):
    """Call `dataset.open_resources()` once in this process.

    Records the attributes it set, so pickling drops them (they are
    reopened in each worker process instead of being copied or inherited).
    """
    if runtime.resources_pid == os.getpid():
        return
    with runtime.resource_lock:
        if runtime.resources_pid == os.getpid():
            return
        before = dict(dataset.__dict__)
        with user_code(dataset, dataset.epoch, (HOOK, 0), False):
            dataset.open_resources()
        after = dataset.__dict__
        runtime.resource_backup = {
            name: before.get(name, _MISSING)
            for name in after
            if name not in before or before[name] is not after[name]
        }
        runtime.resources_pid = os.getpid()


def close_resources(dataset, runtime):
    if runtime.resources_pid != os.getpid():
        return
    runtime.resources_pid = None
    with user_code(dataset, dataset.epoch, (HOOK, 0), False):
        dataset.close_resources()


_MISSING = object()


def strip_resources(state, runtime):
    """A copy of `state` (an instance dict) without per-process resources."""
    state = dict(state)
    for name, value in runtime.resource_backup.items():
        if value is _MISSING:
            state.pop(name, None)
        else:
            state[name] = value
    return state


def compute(dataset, runtime, epoch, index, reseed_globals):
    """Batch `index` of `epoch`: the user's `__getitem__`, seeded."""
    open_resources(dataset, runtime)
    key = (BATCH, epoch, index)
    with user_code(dataset, epoch, key, reseed_globals):
        return type(dataset).__getitem__(dataset, index)


def add_note(exc, text):
    if hasattr(exc, "add_note"):
        exc.add_note(text)


def dumps_for_workers(dataset):
    """Pickle `dataset` for worker processes, naming what cannot be pickled."""
    try:
        return pickle.dumps(dataset, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        cls = type(dataset).__qualname__
        bad = []
        for name, value in dataset.__getstate__().items():
            try:
                pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as attr_error:
                kind = f"{type(value).__module__}.{type(value).__qualname__}"
                bad.append(f"`{name}` ({kind}: {attr_error})")
        if bad:
            problem = f"attribute {', '.join(bad)} cannot be pickled"
            fix = (
                "Open files, clients and other per-process handles in "
                "`open_resources()` (called once in each worker process; "
                "what it sets is never pickled) instead of `__init__`, "
                "or pass use_multiprocessing=False to use threads."
            )
        else:
            problem = f"it cannot be pickled ({error})"
            fix = (
                f"Define the class `{cls}` at the top level of an importable "
                "module (not inside a function), so worker processes can "
                "import it, or pass use_multiprocessing=False."
            )
        raise TypeError(
            f"keras_cool.Sequence `{cls}` is sent to worker processes "
            f"(use_multiprocessing=True), but {problem}. {fix}"
        ) from error
