"""Worker pools of `keras_cool.Sequence`: threads or processes.

Both pools have one interface (`Pool`). The Sequence hands a pool an
epoch's `_order.Plan` (the order of batch indices, its length, the
lookahead capacity and the positions already served) and asks for
positions; the pool submits the batch and the ones after it by itself.

- `get(plan, position)`: the batch at `position` of `plan`, prefetching
  the next ones; raises `Closed` if the pool was closed meanwhile (the
  idle reaper), so the caller starts a new one.
- `has(plan, position)`: whether that batch is already submitted.
- `refresh()`: the dataset changed (an epoch hook ran): drop prefetched
  batches and give worker processes the new state.
- `close()`, `closed`, `close_if_idle(timeout)`.

`ProcessPool` (its pipe protocol included) is in `_process_pool`.
"""

import atexit
import concurrent.futures
import multiprocessing
import multiprocessing.util  # noqa: F401 (its atexit hook must come first)
import os
import threading
import time
import weakref

from keras_cool.data import _resources

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
            pool.close_if_idle(IDLE_TIMEOUT)


def ensure_reaper():
    with _REAPER_LOCK:
        thread = _REAPER["thread"]
        if thread is None or _REAPER["pid"] != os.getpid():
            thread = threading.Thread(
                target=_reap, name="keras_cool_sequence_reaper", daemon=True
            )
            thread.start()
            _REAPER.update(thread=thread, pid=os.getpid())


class Closed(Exception):
    """Raised by `get` on a pool closed meanwhile: start a new one."""


class Pool:
    """The shared part: plan, lookahead, in-use count, idle closing.

    Subclasses implement `_send(key, epoch, index)`, `_wait(key, epoch,
    index)` (the batch, or raise), `_drop()` (forget submitted batches)
    and `_shutdown()`.
    """

    def __init__(self, name, reap):
        self.name = name
        self.reap = reap
        self.closed = False
        self.lock = threading.Lock()
        self.busy = 0
        self.last_used = time.monotonic()
        self.plan = None
        self.generation = 0
        self.queued = {}  # position -> (key, index), submitted, not taken
        self.taken = set()  # positions of `plan` handed out
        self._shut = False
        self._down = threading.Event()
        _LIVE_POOLS.add(self)

    def has(self, plan, position):
        """Whether batch `position` of `plan` was already submitted."""
        return plan is self.plan and position in self.queued

    def get(self, plan, position):
        """Batch `position` of `plan`; submits up to `plan.capacity` ahead.

        A new `plan` drops what was prefetched for the previous one.
        """
        with self.lock:
            if self.closed:
                raise Closed(self.name)
            self.busy += 1
        try:
            if plan is not self.plan:
                self._restart(plan)
            if position not in self.queued:
                self._submit(position)
            self._prefetch(position)
            key, index = self.queued.pop(position)
            batch = self._wait(key, plan.epoch, index)
            self.taken.add(position)
            return batch
        finally:
            with self.lock:
                self.busy -= 1
                self.last_used = time.monotonic()

    def refresh(self):
        """Drop prefetched batches: the dataset changed."""
        self._restart(None)

    def close_if_idle(self, timeout):
        """Close the pool if it may be reaped and was unused `timeout` s."""
        with self.lock:
            idle = time.monotonic() - self.last_used > timeout
            if not (self.reap and idle and self.busy == 0 and not self.closed):
                return
            self.closed = True  # nobody may use it from now on
        self.close()

    def close(self):
        """Stop the workers; later `get` calls raise `Closed`.

        If another thread (the reaper) is closing it, wait until it is done.
        """
        with self.lock:
            self.closed = True
            closing = self._shut
            self._shut = True
        if closing:
            self._down.wait(30.0)
            return
        try:
            _LIVE_POOLS.discard(self)
            self._drop()
            self.queued = {}
            self._shutdown()
        finally:
            self._down.set()

    def _restart(self, plan):
        self._drop()
        self.plan = plan
        self.generation += 1
        self.queued = {}
        self.taken = set()

    def _submit(self, position):
        key = (self.generation, position)
        index = self.plan.index(position)
        self._send(key, self.plan.epoch, index)
        self.queued[position] = (key, index)

    def _prefetch(self, position):
        plan = self.plan
        end = position + 1 + 2 * plan.capacity
        if plan.length is not None:
            end = min(end, plan.length)
        for ahead in range(position + 1, end):
            if len(self.queued) >= plan.capacity:
                break
            done = ahead in plan.served or ahead in self.taken
            if not done and ahead not in self.queued:
                self._submit(ahead)


class ThreadPool(Pool):
    """Batches computed by worker threads of this process.

    `compute(epoch, index)` computes one batch; threads share the dataset,
    so `refresh` only drops what was prefetched.
    """

    def __init__(self, compute, workers, name):
        super().__init__(name, reap=False)
        self.compute = compute
        self.executor = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="keras_cool_sequence"
        )
        self.futures = {}

    def _send(self, key, epoch, index):
        self.futures[key] = self.executor.submit(self.compute, epoch, index)

    def _wait(self, key, epoch, index):
        try:
            return self.futures.pop(key).result()
        except Exception as error:
            _resources.add_note(
                error,
                f"keras_cool.Sequence: raised in a worker thread while "
                f"computing batch {index} (epoch {epoch}).",
            )
            raise

    def _drop(self):
        for future in self.futures.values():
            future.cancel()
        self.futures = {}

    def _shutdown(self):
        self.executor.shutdown(wait=True, cancel_futures=True)
