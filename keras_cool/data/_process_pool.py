"""Worker processes of `keras_cool.Sequence`: `ProcessPool`.

The pool:

- starts processes from an explicit start method
  (`multiprocessing.get_context`), not daemonic, so code inside a batch may
  start its own pool;
- gives each worker its own task and result pipes (a killed worker cannot
  leave a shared queue locked) and sends results from a feeder thread, so a
  worker keeps computing while the main process trains;
- waits on the pipes and on the process sentinels together, so a worker
  that dies raises an error at once instead of hanging;
- re-raises a worker's exception in the main process with the batch index
  and the worker's traceback;
- is closed at the end of an epoch, on an error, on `close()`, when the
  Sequence is garbage collected, after `IDLE_TIMEOUT` unused and at
  interpreter exit (the `atexit` hook is registered after
  multiprocessing's own, so it runs first).

Pipe protocol (all messages are tuples; `key` is `(generation, position)`
and names one submitted batch):

| direction | message | meaning |
|---|---|---|
| main → worker | `("batch", key, epoch, index)` | compute batch `index` |
| main → worker | `("state", payload)` | take a new dataset state (pickled) |
| main → worker | `("free", numbers)` | these shared-memory blocks are free |
| main → worker | `("stop",)` | close resources and exit |
| worker → main | `("ok", key, batch)` | the batch (or a `_shared.Packed`) |
| worker → main | `("error", key, record)` | its `_worker.ErrorRecord` |
| worker → main | `("fatal", traceback)` | the worker could not start |

Results whose key is no longer awaited (dropped by `refresh`) are ignored
(their blocks are freed). Large arrays travel in shared-memory blocks
(`_shared`); the pool removes the blocks' names when it closes.
"""

import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import threading
import time

from keras_cool.data import _interrupt
from keras_cool.data import _pools
from keras_cool.data import _shared
from keras_cool.data import _start
from keras_cool.data import _worker


def _likely_cause(code):
    """What a worker's exit code most likely means, in words."""
    if code == -signal.SIGKILL:
        return (
            "It was probably killed by the operating system (SIGKILL "
            "often means out of memory)."
        )
    if code is not None and code < 0:
        return "It was killed by a signal or crashed in native code."
    return (
        "It exited on its own: it failed to start (its traceback is on "
        "stderr), or code it ran (`__getitem__`, `open_resources`, a "
        "module imported to unpickle the dataset) called sys.exit or "
        "os._exit. Workers never run the main script: the dataset is sent "
        "to them by value."
    )


class _Worker:
    def __init__(self, wid, process, tasks, results):
        self.wid = wid
        self.process = process
        self.tasks = tasks
        self.results = results
        self.keys = set()


class ProcessPool(_pools.Pool):
    """Batches computed by worker processes.

    `dumps()` pickles the dataset (at start and on `refresh`);
    `make_source`, a picklable callable, turns the unpickled dataset into
    what a worker runs (see `_worker.worker_loop`).
    """

    def __init__(self, dumps, make_source, workers, start_method, name, reap):
        super().__init__(name, reap)
        self.dumps = dumps
        self.workers = []
        self.ready = {}  # key -> ("ok" | "error", value), received
        self.owner = {}  # key -> the _Worker computing it
        self.batch_of = {}  # key -> (index, epoch), for error messages
        self.interrupted = False
        self.grace = 2.0  # seconds a worker gets to stop before SIGTERM
        self.blocks = _shared.Blocks(_shared.new_prefix(), _shared.threshold())
        _interrupt.watch(self)
        context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            _start.preload_forkserver(context)
        with self.lock:
            self.busy += 1  # the idle reaper must not close a pool starting
        try:
            payload = dumps()
            for wid in range(workers):
                self.workers.append(
                    self._start(context, wid, make_source, payload)
                )
        except BaseException:
            self.close()
            raise
        finally:
            with self.lock:
                self.busy -= 1
                self.last_used = time.monotonic()  # starting takes a while
        if reap:
            _pools.ensure_reaper()

    def _start(self, context, wid, make_source, payload):
        task_reader, task_writer = context.Pipe(duplex=False)
        result_reader, result_writer = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker.worker_loop,
            args=(
                wid,
                make_source,
                payload,
                task_reader,
                result_writer,
                (self.blocks.prefix, self.blocks.threshold),
            ),
            name=f"keras_cool_sequence_worker_{wid}",
            daemon=False,
        )
        try:
            _start.start(process)
        except AssertionError as error:
            raise RuntimeError(
                f"keras_cool.Sequence `{self.name}` cannot start worker "
                f"processes here: {error}. This process is itself a "
                "daemonic worker (for example of a multiprocessing.Pool or "
                "of keras.utils.PyDataset). Use use_multiprocessing=False "
                "(threads) in here, or start the outer work in non-daemonic "
                "processes (keras_cool.Sequence's own workers are not "
                "daemonic, so a Sequence or a Pool inside a batch works)."
            ) from error
        finally:
            task_reader.close()
            result_writer.close()
        return _Worker(wid, process, task_writer, result_reader)

    def interrupt(self):
        """Ctrl-C: close now (workers get a short grace), in a thread."""
        if self.closed:
            return
        self.interrupted = True
        self.grace = 0.2
        threading.Thread(
            target=self.close, name="keras_cool_sequence_interrupt"
        ).start()

    def refresh(self):
        """Drop prefetched batches and send the new state to the workers."""
        super().refresh()
        payload = self.dumps()
        for worker in self.workers:
            worker.tasks.send(("state", payload))

    def _send(self, key, epoch, index):
        worker = min(self.workers, key=lambda w: (len(w.keys), w.wid))
        with self._pipes():
            for wid, numbers in self.blocks.take_released().items():
                self.workers[wid].tasks.send(("free", numbers))
            worker.tasks.send(("batch", key, epoch, index))
        worker.keys.add(key)
        self.owner[key] = worker
        self.batch_of[key] = (index, epoch)

    def _drop(self):
        # Results still on their way are dropped when they arrive.
        self.ready = {}
        self.batch_of = {}
        for worker in self.workers:
            worker.keys = set()
        self.owner = {}

    def _wait(self, key, epoch, index):
        """Receive until `key` arrives; close the pool on any error."""
        try:
            while key not in self.ready:
                if self.closed:  # by another thread (Ctrl-C, idling)
                    raise _pools.Closed(self.name)
                self._receive(key)
        except BaseException:
            self.close()
            raise
        kind, value = self.ready.pop(key)
        self.batch_of.pop(key)
        if kind == "ok":
            return value
        self.close()
        raise value.rebuild(self.name, epoch, index)

    def _receive(self, key):
        """Wait up to 1 s for results or dead workers, and handle them."""
        if key not in self.owner:
            if self.closed:
                raise _pools.Closed(self.name)
            raise RuntimeError(f"batch {key} was never submitted")
        by_conn = {w.results: w for w in self.workers}
        by_sentinel = {w.process.sentinel: w for w in self.workers}
        with self._pipes():
            ready = multiprocessing.connection.wait(
                list(by_conn) + list(by_sentinel), timeout=1.0
            )
        dead = []
        for item in ready:
            if item in by_conn:
                worker = by_conn[item]
                try:
                    message = item.recv()
                except (EOFError, OSError):
                    dead.append(worker)
                    continue
                self._handle(worker, message)
            else:
                dead.append(by_sentinel[item])
        for worker in dead:
            # Take what it sent before dying, then report it.
            try:
                while worker.results.poll(0):
                    self._handle(worker, worker.results.recv())
            except (EOFError, OSError):
                pass
            self._died(worker)

    @contextlib.contextmanager
    def _pipes(self):
        """A pipe error once another thread (Ctrl-C) closed the pool, whose
        pipes it closes, means `Closed`: the caller goes on without it."""
        try:
            yield
        except (OSError, ValueError):
            if self.closed:
                raise _pools.Closed(self.name) from None
            raise

    def _handle(self, worker, message):
        """File one worker message in `ready`; raise on "fatal"."""
        kind = message[0]
        if kind == "fatal":
            raise RuntimeError(
                f"keras_cool.Sequence `{self.name}`: worker process "
                f"{worker.wid} (pid {worker.process.pid}) could not start:\n"
                f"{message[1]}\nThe dataset is sent to workers by value "
                "(cloudpickle), but what it refers to by name (modules, "
                "and classes and functions of importable modules) is "
                "imported in the worker: make those importable there (on "
                "sys.path, installed), or use threads "
                "(use_multiprocessing=False)."
            )
        _, key, value = message
        packed = isinstance(value, _shared.Packed)
        if key not in self.owner:
            if packed:
                self.blocks.discard(worker.wid, value)
            return  # discarded (stale) result
        if packed:
            value = self.blocks.unpack(worker.wid, value)
        del self.owner[key]
        worker.keys.discard(key)
        self.ready[key] = (kind, value)

    def _died(self, worker):
        """Raise the error for a worker that died, naming its batches."""
        if self.closed:  # stopped by `close` from another thread
            raise _pools.Closed(self.name)
        process = worker.process
        process.join(0.1)
        code = process.exitcode
        if code is not None and code < 0:
            try:
                how = f"signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"signal {-code}"
        else:
            how = f"exit code {code}"
        batches = sorted(self.batch_of[k] for k in worker.keys)
        batches = ", ".join(f"{i} (epoch {e})" for i, e in batches) or "none"
        raise RuntimeError(
            f"keras_cool.Sequence `{self.name}`: worker process {worker.wid} "
            f"(pid {process.pid}) died unexpectedly with {how} while it held "
            f"batch(es) {batches}. {_likely_cause(code)} The other workers "
            "were shut down."
        )

    def _shutdown(self):
        for worker in self.workers:
            try:
                worker.tasks.send(("stop",))
            except (OSError, ValueError):
                pass
            worker.tasks.close()
        deadline = time.monotonic() + self.grace
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(2.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.results.close()
        self.blocks.unlink_rest(range(len(self.workers)))
        self.blocks.close()
