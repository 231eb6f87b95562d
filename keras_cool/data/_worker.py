"""The worker process of a `ProcessPool`, and its error record.

`worker_loop` is the process's entry point; the messages it reads and
writes are listed in `_process_pool` (the one place the pipe protocol is written
down). A batch's exception travels back as an `ErrorRecord` and is rebuilt
in the main process by `ErrorRecord.rebuild`.
"""

import os
import pickle
import queue
import signal
import threading
import traceback
from typing import NamedTuple
from typing import Optional

import cloudpickle

from keras_cool.data import _memory
from keras_cool.data import _resources
from keras_cool.data import _shared


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as an exception's cause."""

    def __str__(self):
        return self.args[0]


class ErrorRecord(NamedTuple):
    """An exception raised in a worker process, ready to be pickled."""

    wid: int  # worker number in its pool
    pid: int  # worker process id
    payload: Optional[bytes]  # the pickled exception, None if unpicklable
    type_name: str
    text: str  # str(exception)
    traceback: str  # the worker's formatted traceback

    @classmethod
    def from_exception(cls, wid, error):
        remote_tb = "".join(
            traceback.format_exception(type(error), error, error.__traceback__)
        )
        try:  # by value if its class is in __main__ (cloudpickle)
            payload = cloudpickle.dumps(error)
            pickle.loads(payload)
        except Exception:
            payload = None
        return cls(
            wid,
            os.getpid(),
            payload,
            type(error).__name__,
            str(error),
            remote_tb,
        )

    def rebuild(self, name, epoch, index):
        """The exception to raise in the main process, with where it came
        from and the worker's traceback as its cause."""
        error = None
        if self.payload is not None:
            try:
                error = pickle.loads(self.payload)
            except Exception:
                error = None
        if not isinstance(error, BaseException):
            error = RuntimeError(f"{self.type_name}: {self.text}")
        where = (
            f"keras_cool.Sequence `{name}`: raised in worker process "
            f"{self.wid} (pid {self.pid}) while computing batch {index} "
            f"(epoch {epoch})"
        )
        error.__cause__ = RemoteTraceback(
            f'\n"""\n{where}; worker traceback:\n{self.traceback}"""'
        )
        _resources.add_note(error, f"{where}; see the worker traceback above.")
        return error


def _feed(wid, outbox, results, blocks):
    """Feeder thread: send results so the worker keeps computing; large
    arrays of a batch go into a shared-memory block (`_shared`)."""
    while True:
        message = outbox.get()
        if message is None:
            return
        if message[0] == "ok":
            try:
                message = ("ok", message[1], blocks.pack(message[2]))
            except OSError:  # /dev/shm full or unavailable: use the pipe
                pass
        try:
            results.send(message)
        except (OSError, ValueError):
            return  # the main process is gone or closed the pool
        except Exception as error:  # the batch cannot be pickled
            _, key, _ = message
            error = TypeError(
                "the batch returned by __getitem__ cannot be pickled to be "
                f"sent to the main process ({error}); return NumPy arrays "
                "(or tuples/dicts of them)."
            )
            record = ErrorRecord.from_exception(wid, error)
            results.send(("error", key, record))


def worker_loop(wid, make_source, payload, tasks, results, shared):
    """Entry point of a worker process.

    `make_source(pickle.loads(payload))` builds what computes batches: an
    object with `compute(epoch, index)`, `update(dataset)` (a new state
    from the main process) and `close()` (close this process's resources).
    `shared` is `(prefix, threshold)` of the batch blocks (`_shared`).
    """
    # Ctrl-C in a terminal reaches the whole process group: the main
    # process handles it and stops the pool; a worker dying of it would
    # surface inside the backend's data pipeline instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _memory.keep_freed_memory()  # before the first batch: see _memory
    outbox = queue.Queue()
    blocks = _shared.WorkerBlocks(shared[0], wid, shared[1])
    feeder = threading.Thread(target=_feed, args=(wid, outbox, results, blocks))
    feeder.daemon = True
    feeder.start()
    source = None
    try:
        try:
            source = make_source(pickle.loads(payload))
        except BaseException:
            results.send(("fatal", traceback.format_exc()))
            return
        parent = os.getppid()
        while True:
            try:
                while not tasks.poll(1.0):
                    if os.getppid() != parent:
                        return  # the main process (or fork server) died
                message = tasks.recv()
            except (EOFError, OSError):
                return  # the main process closed the pool or died
            if message[0] == "stop":
                return
            if message[0] == "state":
                source.update(pickle.loads(message[1]))
                continue
            if message[0] == "free":
                blocks.release(message[1])
                continue
            _, key, epoch, index = message
            try:
                outbox.put(("ok", key, source.compute(epoch, index)))
            except Exception as error:
                record = ErrorRecord.from_exception(wid, error)
                outbox.put(("error", key, record))
    except KeyboardInterrupt:
        pass  # interrupted together with the main process: exit quietly
    finally:
        outbox.put(None)
        feeder.join(5.0)
        blocks.close()
        if source is not None:
            try:
                source.close()
            except Exception:
                traceback.print_exc()
