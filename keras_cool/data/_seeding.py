"""Who runs user code, and with which seeded randomness.

A batch's randomness depends only on `(seed, epoch, index)`, wherever it
runs (calling thread, worker thread, worker process):

- `dataset.rng` is a `numpy.random.Generator` built from
  `SeedSequence(seed, spawn_key=(BATCH, epoch, index))`;
- the global `numpy.random` and `random` generators are reseeded from the
  same sequence before the batch and restored after it (not in worker
  threads, which share them).

A thread-local stack records which dataset is running user code, so the
wrappers around user methods (`wrap`) know when to call the user's code
directly.
"""

import functools
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
    """`numpy.random.SeedSequence(seed, spawn_key=key)`."""
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


def wrap(original, dispatch):
    """Wrap a user's method: user code calls it directly, Keras through us."""

    @functools.wraps(original)
    def wrapper(self, *args):
        if current(self) is not None:
            return original(self, *args)
        return dispatch(self, *args)

    wrapper._kc_original = original
    return wrapper


def is_user(method):
    """Whether `method` is a user's method wrapped by `wrap`."""
    return getattr(method, "_kc_original", None) is not None
