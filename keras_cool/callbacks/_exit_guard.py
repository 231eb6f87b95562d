"""Run a cleanup when control leaves a model's fit/evaluate/predict.

Private. Keras does not call `on_train_end`, `on_test_end` or
`on_predict_end` when `fit`, `evaluate` or `predict` raise (an error in a
callback or in the data, `KeyboardInterrupt`). A callback that changes the
model for the length of a call (the EMA swapping its weights in) registers
its undo here with `on_exit(model, cleanup)`; the cleanup then runs when
the innermost running `fit`/`evaluate`/`predict` of that model returns or
raises, before the exception reaches the caller. Cleanups must be
idempotent: on a normal return the callback's own `on_*_end` has usually
undone the change already.

Two mechanisms:

- `install(model)` (called from the callback's `set_model`) wraps the
  model's `fit`, `evaluate` and `predict` (instance attributes) in a
  `try/finally` that runs the cleanups registered during the call. Every
  later call is covered, and so is the validation inside the current
  `fit` (Keras calls `self.evaluate` for it).
- A call that was already running when `install` ran (the first `fit`
  with the callback) has no wrapper: its frame is watched with a profile
  function (`sys.setprofile`, this thread only), which fires when that
  frame returns or raises and is removed right after. It costs a little
  per Python call while active, and is only active between the
  registration and the end of that one call, or until `cancel` says the
  change was undone already (the EMA's epoch swap, at the next epoch).
"""

import sys
import warnings

__all__ = ["cancel", "install", "on_exit"]

ATTR = "_keras_cool_exit_guard"
METHODS = ("fit", "evaluate", "predict")


class _Guard:
    def __init__(self):
        self.depth = 0
        self.cleanups = []  # (depth, cleanup)

    def wrap(self, method):
        def guarded(*args, **kwargs):
            self.depth += 1
            depth = self.depth
            try:
                return method(*args, **kwargs)
            finally:
                self.depth -= 1
                self.run(depth)

        guarded.__wrapped__ = method
        guarded.__doc__ = method.__doc__
        return guarded

    def run(self, depth):
        due = [c for d, c in self.cleanups if d >= depth]
        self.cleanups = [(d, c) for d, c in self.cleanups if d < depth]
        _run_all(due)


def _run_all(cleanups):
    """Runs every cleanup; the first error is raised after all ran."""
    first = None
    for cleanup in cleanups:
        try:
            cleanup()
        except BaseException as error:  # noqa: PERF203
            first = first or error
    if first is not None:
        raise first


def install(model):
    """Wraps `model.fit/evaluate/predict` (once per model)."""
    if getattr(model, ATTR, None) is not None:
        return
    guard = _Guard()
    for name in METHODS:
        setattr(model, name, guard.wrap(getattr(model, name)))
    setattr(model, ATTR, guard)


def on_exit(model, cleanup):
    """Runs `cleanup()` when the innermost running `fit`, `evaluate` or
    `predict` of `model` returns or raises. Outside any such call,
    nothing is registered."""
    guard = getattr(model, ATTR, None)
    if guard is not None and guard.depth > 0:
        guard.cleanups.append((guard.depth, cleanup))
        return
    frame = _running_call(model)
    if frame is not None:
        _Watcher.add(frame, cleanup)


def cancel(model, cleanup):
    """Forgets `cleanup` (registered with `on_exit`): the change it would
    undo was undone already. Stops the profile function once it watches
    nothing, so it costs nothing for the rest of the call."""
    guard = getattr(model, ATTR, None)
    if guard is not None:
        guard.cleanups = [(d, c) for d, c in guard.cleanups if c != cleanup]
    _Watcher.discard(cleanup)


def _running_call(model):
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name in METHODS:
            if frame.f_locals.get("self") is model:
                return frame
        frame = frame.f_back
    return None


class _Watcher:
    """One profile function for this thread, watching frames' returns."""

    entries = []  # (frame, cleanup)
    previous = None
    active = False

    @classmethod
    def add(cls, frame, cleanup):
        cls.entries.append((frame, cleanup))
        if not cls.active:
            cls.previous = sys.getprofile()
            cls.active = True
            sys.setprofile(cls.profile)

    @classmethod
    def discard(cls, cleanup):
        cls.entries = [(f, c) for f, c in cls.entries if c != cleanup]
        if cls.active and not cls.entries:
            sys.setprofile(cls.previous)
            cls.previous, cls.active = None, False

    @classmethod
    def profile(cls, frame, event, arg):
        if cls.previous is not None:
            cls.previous(frame, event, arg)
        if event != "return":
            return
        if not any(f is frame for f, _ in cls.entries):
            return
        due = [c for f, c in cls.entries if f is frame]
        cls.entries = [(f, c) for f, c in cls.entries if f is not frame]
        if not cls.entries:
            sys.setprofile(cls.previous)
            cls.previous, cls.active = None, False
        try:
            _run_all(due)
        except Exception as error:  # cannot raise from a profile function
            warnings.warn(
                f"keras_cool: a cleanup after {frame.f_code.co_name} "
                f"failed: {error!r}",
                RuntimeWarning,
                stacklevel=2,
            )
