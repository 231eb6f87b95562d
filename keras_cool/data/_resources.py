"""Per-process resources of a `keras_cool.Sequence`, and pickling it.

`open_resources()` runs once in each process that computes batches; what
it sets on the dataset is recorded, so pickling leaves it out and a fork
drops it (each worker process opens its own).
"""

import os
import pickle

import cloudpickle

from keras_cool.data import _seeding

_MISSING = object()


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
        key = (_seeding.HOOK, 0)
        with _seeding.user_code(dataset, dataset.epoch, key, False):
            dataset.open_resources()
        after = dataset.__dict__
        runtime.resource_backup = {
            name: before.get(name, _MISSING)
            for name in after
            if name not in before or before[name] is not after[name]
        }
        runtime.resources_pid = os.getpid()


def close_resources(dataset, runtime):
    """Call `dataset.close_resources()` if this process opened them."""
    if runtime.resources_pid != os.getpid():
        return
    runtime.resources_pid = None
    key = (_seeding.HOOK, 0)
    with _seeding.user_code(dataset, dataset.epoch, key, False):
        dataset.close_resources()


def strip_resources(state, runtime):
    """A copy of `state` (an instance dict) without per-process resources."""
    state = dict(state)
    for name, value in runtime.resource_backup.items():
        if value is _MISSING:
            state.pop(name, None)
        else:
            state[name] = value
    return state


def add_note(exc, text):
    """`exc.add_note(text)` where Python has it (3.11+)."""
    if hasattr(exc, "add_note"):
        exc.add_note(text)


def dumps_for_workers(dataset):
    """Pickle `dataset` by value for worker processes (cloudpickle).

    Classes and functions of `__main__` (a script, guarded or not, a
    notebook, stdin) and lambdas travel by value, so no worker imports the
    main module; `pickle.loads` rebuilds them. What cannot be pickled is
    named in the error, with the fix.
    """
    try:
        return cloudpickle.dumps(dataset, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        cls = type(dataset).__qualname__
        bad = []
        for name, value in dataset.__getstate__().items():
            try:
                cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
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
                f"The class `{cls}` is sent by value together with the "
                "globals and enclosing variables its methods use: open "
                "files, clients and other per-process handles in "
                "`open_resources()` instead, or pass "
                "use_multiprocessing=False."
            )
        raise TypeError(
            f"keras_cool.Sequence `{cls}` is sent to worker processes "
            f"(use_multiprocessing=True), but {problem}. {fix}"
        ) from error
