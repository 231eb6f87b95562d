"""Per-process state of a `keras_cool.Sequence` (`Runtime`, `of`).

It lives in the dataset's `__dict__` under `_kc_rt`, pickles as a fresh
one and is replaced after a fork, so nothing per-process (locks, the pool,
opened resources) crosses a process boundary.
"""

import os
import threading
import warnings

import numpy as np

from keras_cool.data import _resources


class Runtime:
    """Per-process state of a Sequence; pickles as a fresh one."""

    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.resource_lock = threading.Lock()
        self.resources_pid = None
        self.resource_backup = {}
        self.in_epoch = False
        self.pool = None
        self.interrupted = None  # the pool Ctrl-C closed, in this epoch
        self.finalizer = None
        self.generation = 0
        self.permutation = None
        self.warned_order = False

    def __reduce__(self):
        return (Runtime, ())


def of(dataset):
    """`dataset`'s runtime in this process, made if missing."""
    runtime = dataset.__dict__.get("_kc_rt")
    if runtime is None or runtime.pid != os.getpid():
        if runtime is not None:  # inherited across fork: drop handles
            dataset.__dict__.update(
                _resources.strip_resources(dataset.__dict__, runtime)
            )
        runtime = Runtime()
        dataset.__dict__["_kc_rt"] = runtime
        if "seed" not in dataset.__dict__:
            warnings.warn(
                f"{type(dataset).__qualname__} should call "
                "`super().__init__(**kwargs)` in its constructor; without "
                "it, keras_cool.Sequence uses its defaults and a seed "
                "drawn from the global NumPy generator.",
                stacklevel=4,
            )
            dataset.seed = int(np.random.randint(0, 2**31 - 1))
    return runtime


def update_state(dataset, other):
    """In a persistent worker: take `other`'s state, keep resources."""
    runtime = of(dataset)
    keep = set(runtime.resource_backup) | {"_kc_rt"}
    for name in list(dataset.__dict__):
        if name not in keep and name not in other.__dict__:
            del dataset.__dict__[name]
    for name, value in other.__dict__.items():
        if name not in keep:
            dataset.__dict__[name] = value
