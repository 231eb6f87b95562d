"""Worker pools of `keras_cool.Sequence`: threads or processes.

Both take tasks `(key, epoch, index)` and hand back results by key, so the
Sequence can prefetch in order. The process pool:

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
  Sequence is garbage collected and at interpreter exit (the `atexit` hook
  is registered after multiprocessing's own, so it runs first).
"""

import atexit
import concurrent.futures
import multiprocessing
import multiprocessing.connection
import multiprocessing.util  # noqa: F401 (its atexit hook must come first)
import os
import pickle
import queue
import signal
import threading
import time
import traceback
import weakref

from keras_cool.data import _batch

# A process pool that nobody used for this long is closed (Keras does not
# call `on_epoch_end` when `fit` fails or is interrupted); it is started
# again if needed. Persistent pools are left alone.
IDLE_TIMEOUT = 30.0
_LIVE_POOLS = weakref.WeakSet()
_REAPER = {"thread": None, "pid": None}
_REAPER_LOCK = threading.Lock()


def _close_all_pools():
    for pool in list(_LIVE_POOLS):
        pool.close()


atexit.register(_close_all_pools)


def _reap():
    while True:
        time.sleep(max(0.05, min(1.0, IDLE_TIMEOUT / 4)))
        for pool in list(_LIVE_POOLS):
            close_if_idle = getattr(pool, "close_if_idle", None)
            if close_if_idle is not None:
                close_if_idle(IDLE_TIMEOUT)


def _ensure_reaper():
    with _REAPER_LOCK:
        thread = _REAPER["thread"]
        if thread is None or _REAPER["pid"] != os.getpid():
            thread = threading.Thread(
                target=_reap, name="keras_cool_sequence_reaper", daemon=True
            )
            thread.start()
            _REAPER.update(thread=thread, pid=os.getpid())


def _preload_forkserver(context):
    """Have the fork server import keras_cool (and so Keras) once.

    Workers forked from it then start in a fraction of a second instead of
    importing Keras and its backend again. This only takes effect if the
    fork server of this process is not running yet.
    """
    import multiprocessing.forkserver  # POSIX only

    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    modules = list(getattr(server, "_preload_modules", None) or ["__main__"])
    if "keras_cool" not in modules:
        context.set_forkserver_preload(modules + ["keras_cool"])


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as an exception's cause."""

    def __str__(self):
        return self.args[0]


class ThreadPool:
    """Batches computed by worker threads of this process."""

    def __init__(self, workers):
        self.workers = workers
        self.executor = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="keras_cool_sequence"
        )
        self.futures = {}
        self.closed = False
        _LIVE_POOLS.add(self)

    def acquire(self):
        return not self.closed

    def release(self):
        pass

    def submit(self, dataset, runtime, key, epoch, index):
        future = self.executor.submit(
            _batch.compute, dataset, runtime, epoch, index, False
        )
        self.futures[key] = (future, index)

    def has(self, key):
        return key in self.futures

    def pending(self):
        return len(self.futures)

    def discard_all(self):
        for future, _ in self.futures.values():
            future.cancel()
        self.futures = {}

    def get(self, key):
        future, index = self.futures.pop(key)
        try:
            return future.result()
        except Exception as error:
            epoch = key[1]
            _batch.add_note(
                error,
                f"keras_cool.Sequence: raised in a worker thread while "
                f"computing batch {index} (epoch {epoch}).",
            )
            raise

    def close(self):
        self.closed = True
        _LIVE_POOLS.discard(self)
        self.discard_all()
        self.executor.shutdown(wait=True, cancel_futures=True)


class _Worker:
    def __init__(self, wid, process, tasks, results):
        self.wid = wid
        self.process = process
        self.tasks = tasks
        self.results = results
        self.keys = set()


class ProcessPool:
    """Batches computed by worker processes."""

    def __init__(self, payload, workers, start_method, name, reap=True):
        self.name = name
        self.workers = []
        self.ready = {}
        self.owner = {}
        self.index_of = {}
        self.closed = False
        self.reap = reap
        self.lock = threading.Lock()
        self.busy = 0
        self.last_used = time.monotonic()
        context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            _preload_forkserver(context)
        _LIVE_POOLS.add(self)
        try:
            for wid in range(workers):
                self.workers.append(self._start(context, wid, payload))
        except BaseException:
            self.close()
            raise
        if reap:
            _ensure_reaper()

    def acquire(self):
        """Mark the pool in use; False if it was closed meanwhile."""
        with self.lock:
            if self.closed:
                return False
            self.busy += 1
            return True

    def release(self):
        with self.lock:
            self.busy -= 1
            self.last_used = time.monotonic()

    def close_if_idle(self, timeout):
        with self.lock:
            idle = time.monotonic() - self.last_used > timeout
            if not (self.reap and idle and self.busy == 0 and not self.closed):
                return
            self.busy = -(10**9)  # nobody may use it from now on
        self.close()

    def _start(self, context, wid, payload):
        task_reader, task_writer = context.Pipe(duplex=False)
        result_reader, result_writer = context.Pipe(duplex=False)
        process = context.Process(
            target=worker_loop,
            args=(wid, payload, task_reader, result_writer),
            name=f"keras_cool_sequence_worker_{wid}",
            daemon=False,
        )
        try:
            process.start()
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

    def submit(self, dataset, runtime, key, epoch, index):
        del dataset, runtime
        worker = min(self.workers, key=lambda w: (len(w.keys), w.wid))
        worker.tasks.send(("batch", key, epoch, index))
        worker.keys.add(key)
        self.owner[key] = worker
        self.index_of[key] = index

    def has(self, key):
        return key in self.owner or key in self.ready

    def pending(self):
        return len(self.owner) + len(self.ready)

    def discard_all(self):
        # Results still on their way are dropped when they arrive.
        self.ready = {}
        self.index_of = {}
        for worker in self.workers:
            worker.keys = set()
        self.owner = {}

    def send_state(self, payload):
        for worker in self.workers:
            worker.tasks.send(("state", payload))

    def get(self, key):
        try:
            while key not in self.ready:
                self._receive(key)
        except BaseException:
            self.close()
            raise
        kind, value = self.ready.pop(key)
        index = self.index_of.pop(key)
        if kind == "ok":
            return value
        self.close()
        raise _rebuild_error(self.name, key[1], index, value)

    def _receive(self, key):
        if key not in self.owner:
            raise RuntimeError(f"batch {key} was never submitted")
        by_conn = {w.results: w for w in self.workers}
        by_sentinel = {w.process.sentinel: w for w in self.workers}
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

    def _handle(self, worker, message):
        kind = message[0]
        if kind == "fatal":
            raise RuntimeError(
                f"keras_cool.Sequence `{self.name}`: worker process "
                f"{worker.wid} (pid {worker.process.pid}) could not start:\n"
                f"{message[1]}\nIf the class is defined in a notebook or an "
                "interactive session, move it to an importable module or "
                "pass start_method='fork'."
            )
        _, key, value = message
        if key not in self.owner:
            return  # discarded (stale) result
        del self.owner[key]
        worker.keys.discard(key)
        self.ready[key] = (kind, value)

    def _died(self, worker):
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
        batches = sorted((self.index_of[k], k[1]) for k in worker.keys)
        batches = ", ".join(f"{i} (epoch {e})" for i, e in batches) or "none"
        raise RuntimeError(
            f"keras_cool.Sequence `{self.name}`: worker process {worker.wid} "
            f"(pid {process.pid}) died unexpectedly with {how} while it held "
            f"batch(es) {batches}. It was probably killed by the operating "
            "system (SIGKILL often means out of memory) or crashed in "
            "native code. The other workers were shut down."
        )

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        _LIVE_POOLS.discard(self)
        for worker in self.workers:
            try:
                worker.tasks.send(("stop",))
            except (OSError, ValueError):
                pass
            worker.tasks.close()
        for worker in self.workers:
            worker.process.join(2.0)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(2.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.results.close()
        self.ready = {}
        self.owner = {}


def _rebuild_error(name, epoch, index, value):
    wid, pid, payload, type_name, text, remote_tb = value
    error = None
    if payload is not None:
        try:
            error = pickle.loads(payload)
        except Exception:
            error = None
    if not isinstance(error, BaseException):
        error = RuntimeError(f"{type_name}: {text}")
    where = (
        f"keras_cool.Sequence `{name}`: raised in worker process {wid} "
        f"(pid {pid}) while computing batch {index} (epoch {epoch})"
    )
    error.__cause__ = RemoteTraceback(
        f'\n"""\n{where}; worker traceback:\n{remote_tb}"""'
    )
    _batch.add_note(error, f"{where}; see the worker traceback above.")
    return error


def _pack_error(wid, error):
    remote_tb = "".join(
        traceback.format_exception(type(error), error, error.__traceback__)
    )
    try:
        payload = pickle.dumps(error)
        pickle.loads(payload)
    except Exception:
        payload = None
    return (
        wid,
        os.getpid(),
        payload,
        type(error).__name__,
        str(error),
        remote_tb,
    )


def _feed(wid, outbox, results):
    while True:
        message = outbox.get()
        if message is None:
            return
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
            results.send(("error", key, _pack_error(wid, error)))


def worker_loop(wid, payload, tasks, results):
    """Entry point of a worker process."""
    outbox = queue.Queue()
    feeder = threading.Thread(target=_feed, args=(wid, outbox, results))
    feeder.daemon = True
    feeder.start()
    dataset = None
    try:
        try:
            dataset = pickle.loads(payload)
        except BaseException:
            results.send(("fatal", traceback.format_exc()))
            return
        runtime = dataset._kc_runtime()
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
                dataset._kc_update_state(pickle.loads(message[1]))
                continue
            _, key, epoch, index = message
            try:
                batch = _batch.compute(dataset, runtime, epoch, index, True)
                outbox.put(("ok", key, batch))
            except Exception as error:
                outbox.put(("error", key, _pack_error(wid, error)))
    except KeyboardInterrupt:
        pass  # interrupted together with the main process: exit quietly
    finally:
        outbox.put(None)
        feeder.join(5.0)
        if dataset is not None:
            try:
                _batch.close_resources(dataset, dataset._kc_runtime())
            except Exception:
                traceback.print_exc()
