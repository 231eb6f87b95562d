"""Ctrl-C while worker processes serve a `keras_cool.Sequence`.

`install_interrupt_handler` chains a SIGINT handler that shuts every
watched pool down (`watch(pool)`: any object with `interrupt()`) when
Ctrl-C stops training; `stopped_by_ctrl_c(pool)`, asked when a batch is
requested, tells whether Ctrl-C closed that pool, and delivers a
`KeyboardInterrupt` again that Python dropped on its way (in a finalizer).
"""

import signal
import sys
import threading
import time
import weakref

# Live process pools of this process, closed at once on SIGINT.
_POOLS = weakref.WeakSet()
_SIGINT = {
    "previous": None,
    "installed": False,
    "unraisable": None,
    "raised": None,  # id of the last KeyboardInterrupt it raised
    "lost": False,  # ... which Python dropped (in a finalizer)
    "at": 0.0,  # when it was raised
    "frames": (),  # the Keras frames it was raised in, by id and code
}
# A batch asked for this long after Ctrl-C, while the main thread is still
# in the Keras frames the interrupt was raised in, means it was lost.
LOST_AFTER = 0.5


def install_interrupt_handler():
    """Chains a SIGINT handler (main thread only, once): when Ctrl-C stops
    training (the previous handler raises, by default `KeyboardInterrupt`),
    every live process pool is marked interrupted and shut down in the
    background. Workers ignore SIGINT themselves, so that the signal
    reaches the training loop as a plain `KeyboardInterrupt`, not as a
    worker death inside the backend's data pipeline. A previous handler
    that returns (a graceful "stop after this epoch") leaves the workers
    running.

    If training asks for a batch after that, the `KeyboardInterrupt` was
    lost on its way (Python drops one raised inside a `__del__` method or
    another finalizer, reporting it only to `sys.unraisablehook`), and
    `stopped_by_ctrl_c` delivers it again.
    """
    _SIGINT["frames"] = ()  # a new epoch: forget an earlier Ctrl-C
    if _SIGINT["installed"]:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or previous == signal.SIG_IGN:
        return  # SIGINT ignored, or installed from C: leave it alone
    _SIGINT.update(previous=previous, installed=True)
    _SIGINT["unraisable"] = sys.unraisablehook
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _on_unraisable


def _on_sigint(signum, frame):
    _SIGINT["lost"] = False
    previous = _SIGINT["previous"]
    try:
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt
    except BaseException as error:
        for pool in list(_POOLS):
            pool.interrupt()
        _SIGINT.update(
            raised=id(error), at=time.monotonic(), frames=_keras_frames(frame)
        )
        raise


def _keras_frames(frame):
    """(id, code) of each Keras frame on the stack: not the frames, whose
    locals (the model, the backend's data iterator) must stay free to go."""
    frames = set()
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith("keras."):
            frames.add((id(frame), frame.f_code))
        frame = frame.f_back
    return frames


def _lost_in_keras():
    """Whether the main thread, `LOST_AFTER` seconds after Ctrl-C, still
    runs in a Keras frame the `KeyboardInterrupt` was raised in: then
    something caught and dropped it (not every such place reports to
    `sys.unraisablehook`), and `fit` is going on."""
    if time.monotonic() - _SIGINT["at"] < LOST_AFTER:
        return False
    frames = _SIGINT["frames"]
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        if (id(frame), frame.f_code) in frames:
            return True
        frame = frame.f_back
    return False


def _on_unraisable(unraisable):
    _SIGINT["unraisable"](unraisable)
    lost = unraisable.exc_value
    if isinstance(lost, BaseException) and id(lost) == _SIGINT["raised"]:
        _SIGINT["lost"] = True


def stopped_by_ctrl_c(pool):
    """Whether Ctrl-C closed `pool`; asked when a batch is requested.

    In the main thread, a batch asked for after Ctrl-C means the training
    loop did not get its `KeyboardInterrupt`: it is raised here. In
    another thread (the backend's data thread) the caller computes the
    batch itself, so that the pipeline keeps going (an error from it would
    reach the training loop in the backend's words); if the main thread's
    `KeyboardInterrupt` was lost (dropped in a finalizer, or the main
    thread still in the Keras frames it was raised in `LOST_AFTER` seconds
    later), it is delivered again first, to be raised when the current
    step returns. The next epoch starts new workers.
    """
    if not getattr(pool, "interrupted", False):
        return False
    if threading.current_thread() is threading.main_thread():
        _SIGINT.update(lost=False, frames=())
        raise KeyboardInterrupt
    if _SIGINT["lost"] or _lost_in_keras():
        _SIGINT.update(lost=False, frames=())
        # As a terminal's Ctrl-C would: handled when the step returns.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    return True


def watch(pool):
    """Shut `pool` down (`pool.interrupt()`) on Ctrl-C while it lives."""
    _POOLS.add(pool)
