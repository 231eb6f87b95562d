"""keras_cool.Sequence: a process-safe, reproducible `keras.utils.PyDataset`."""

import functools
import itertools
import multiprocessing
import operator
import os
import threading
import warnings
import weakref

import keras
import numpy as np

from keras_cool.data import _batch
from keras_cool.data import _pools

_HOOKS = ("on_epoch_begin", "on_epoch_end")
_STATE_KEYS = ("seed", "epoch", "position")


class _Runtime:
    """Per-process state of a Sequence; pickles as a fresh one."""

    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.resource_lock = threading.Lock()
        self.resources_pid = None
        self.resource_backup = {}
        self.served = set()
        self.in_epoch = False
        self.pool = None
        self.finalizer = None
        self.generation = 0
        self.order = None
        self.permutation = None
        self.last_position = None
        self.warned_order = False

    def __reduce__(self):
        return (_Runtime, ())


def _wrap(original, dispatch):
    """Wrap a user's method: user code calls it directly, Keras through us."""

    @functools.wraps(original)
    def wrapper(self, *args):
        if _batch.current(self) is not None:
            return original(self, *args)
        return dispatch(self, *args)

    wrapper._kc_original = original
    return wrapper


def _is_user(method):
    return getattr(method, "_kc_original", None) is not None


class Sequence(keras.utils.PyDataset):
    """A process-safe, reproducible drop-in base for `PyDataset`/`Sequence`.

    Change the base class of an existing `keras.utils.Sequence` or
    `keras.utils.PyDataset` (same `__len__` / `__getitem__`, same
    `super().__init__(**kwargs)`) and `model.fit(dataset)` becomes safe with
    `workers=N` and `use_multiprocessing=True|False`:

    - **Randomness** depends only on `(seed, epoch, batch index)`: inside
      `__getitem__`, `self.rng` is a `numpy.random.Generator` made for this
      batch, and the global `numpy.random` and `random` generators are
      reseeded the same way (and restored afterwards), so legacy code that
      calls `np.random.rand()` is fixed too. Workers never repeat an
      augmentation, and the same seed gives the same batches with 1 or N
      workers, threads or processes, fork or spawn. (Worker threads share the
      global generators, so with threads use `self.rng`.)
    - **Epochs**: `shuffle=True` shuffles the batch order with a permutation
      drawn from `(seed, epoch)`; `self.epoch_permutation(n)` gives the
      same kind of permutation of `n` samples for sample-level shuffling.
      `self.epoch` counts complete passes: it advances once every batch was
      served during an epoch (between `on_epoch_begin` and `on_epoch_end`,
      as `fit` and iteration do), so the batches Keras peeks at before
      training do not count. `on_epoch_begin` / `on_epoch_end` run in the
      main process with the global generators seeded from `(seed, epoch)`;
      what they change is sent to persistent workers.
    - **Per-process resources**: override `open_resources()` to open files
      or clients (`self.file = h5py.File(self.path, "r")`). It runs once in
      each process that computes batches, never inherited across fork;
      what it sets is left out when the dataset is pickled for worker
      processes. `close_resources()` runs when a worker stops. If the
      dataset cannot be pickled, the error names the attribute.
    - **Workers**: keras_cool runs its own pool and presents itself to Keras
      as an in-process dataset (`self.workers == 1`,
      `self.use_multiprocessing is False`), so Keras's enqueuer is never
      used. Processes start with an explicit method (default "forkserver",
      "spawn" where that is missing: safe with the threads TensorFlow and
      JAX run), are not daemonic (a batch may start its own
      `multiprocessing.Pool`), and prefetch up to `max_queue_size` batches
      in order. An exception in a worker is re-raised in the main process
      with the batch index and the worker's traceback; a worker that dies
      (killed, out of memory) raises an error at once. The pool is closed
      at the end of each epoch (unless `persistent_workers=True`), on an
      error, on `close()` / leaving a `with` block, when the dataset is
      garbage collected and at exit.
    - **State and scale**: `get_state()` / `set_state()` resume mid-epoch
      with the same order; `shard=(index, count)` keeps every count-th
      batch, so several hosts read disjoint parts.

    Keras's own `fit(shuffle=True)` (the default) shuffles the requested
    batch order with Python's `random`; the batches stay reproducible, but
    prefetching works best with `fit(..., shuffle=False)` and
    `Sequence(shuffle=True)`.

    Iterating (`for batch in dataset`) is one epoch: it calls
    `on_epoch_begin`, uses the workers, then calls `on_epoch_end`.

    Args:
        workers: Number of workers: threads, or processes with
            `use_multiprocessing=True`. With `workers` <= 1 and no
            multiprocessing, batches are computed in the calling thread.
        use_multiprocessing: Whether the workers are processes (needed to
            run CPU-bound Python/NumPy code in parallel). The dataset must
            then be picklable.
        max_queue_size: Maximum number of batches prefetched ahead.
            Defaults to 10.
        seed: Base seed of all randomness. `None` draws one from the global
            NumPy generator at construction (so `keras.utils.set_random_seed`
            makes runs reproducible).
        shuffle: Whether to shuffle the batch order every epoch (seeded).
        start_method: Start method of worker processes: "forkserver"
            (default where available), "spawn" or "fork". Scripts using
            "forkserver" or "spawn" need an `if __name__ == "__main__":`
            guard.
        persistent_workers: Keep worker processes or threads alive across
            epochs instead of starting them every epoch. Call `close()` (or
            use a `with` block) when done.
        shard: Optional `(index, count)`: keep batches `index`, `index +
            count`, ... of each epoch's order (the same order on every host,
            dropping the last `len % count` batches so every shard has the
            same length).

    Example:

    ```python
    class Digits(keras_cool.Sequence):
        def __init__(self, path, batch_size=32, **kwargs):
            super().__init__(**kwargs)
            self.path = path
            self.batch_size = batch_size
            with h5py.File(path, "r") as f:
                self.count = len(f["x"])

        def open_resources(self):  # once per worker process
            self.file = h5py.File(self.path, "r")

        def __len__(self):
            return self.count // self.batch_size

        def __getitem__(self, index):
            s = slice(index * self.batch_size, (index + 1) * self.batch_size)
            x, y = self.file["x"][s], self.file["y"][s]
            noise = self.rng.normal(0.0, 0.1, x.shape)  # per-batch, seeded
            return x + noise, y

    data = Digits("digits.h5", workers=2, use_multiprocessing=True,
                  seed=0, shuffle=True)
    model.fit(data, epochs=3, shuffle=False)
    ```

    Reference:
        Keras `PyDataset` (keras/src/trainers/data_adapters/
        py_dataset_adapter.py); PyTorch `DataLoader` worker seeding and
        watchdog; Grain per-record seeds and checkpointable iterator state.
    """

    num_workers = 1
    use_processes = False
    seed = None
    shuffle = False
    start_method = None
    persistent_workers = False
    shard = None
    _kc_epoch = 0
    _kc_offset = 0

    def __init__(
        self,
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
        seed=None,
        shuffle=False,
        start_method=None,
        persistent_workers=False,
        shard=None,
    ):
        super().__init__(
            workers=1, use_multiprocessing=False, max_queue_size=max_queue_size
        )
        _check_int("workers", workers, 0)
        _check_int("max_queue_size", max_queue_size, 1)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        _check_int("seed", seed, 0)
        methods = multiprocessing.get_all_start_methods()
        if start_method is not None and start_method not in methods:
            raise ValueError(
                f"start_method={start_method!r} is not available here; use "
                f"one of {methods} (or None for the default)."
            )
        if shard is not None:
            shard = _check_shard(shard)
        self.num_workers = workers
        self.use_processes = bool(use_multiprocessing)
        self.seed = seed
        self.shuffle = bool(shuffle)
        self.start_method = start_method
        self.persistent_workers = bool(persistent_workers)
        self.shard = shard

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("__getitem__", "__len__") + _HOOKS:
            method = getattr(cls, name)
            if method is not getattr(Sequence, name) and not _is_user(method):
                dispatch = getattr(Sequence, f"_kc_{name.strip('_')}")
                setattr(cls, name, _wrap(method, dispatch))
        prop = getattr(cls, "num_batches")
        if prop is not Sequence.__dict__["num_batches"] and not _is_user(
            getattr(prop, "fget", None)
        ):
            if isinstance(prop, property):
                fget = prop.fget
            else:  # a plain class attribute such as `num_batches = None`

                def fget(self, value=prop):
                    return value

            dispatch = Sequence.__dict__["num_batches"].fget
            setattr(cls, "num_batches", property(_wrap(fget, dispatch)))

    # What Keras reads: an in-process dataset, so Keras never starts its own
    # enqueuer. keras_cool's pool is configured by `num_workers` and
    # `use_processes` (the `workers` / `use_multiprocessing` arguments).
    @property
    def workers(self):
        return 1

    @workers.setter
    def workers(self, value):
        _check_int("workers", value, 0)
        self.num_workers = value

    @property
    def use_multiprocessing(self):
        return False

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self.use_processes = bool(value)

    @property
    def epoch(self):
        """The epoch of the batch being computed, else the current epoch."""
        context = _batch.current(self)
        return self._kc_epoch if context is None else context[1]

    @property
    def rng(self):
        """The `numpy.random.Generator` of this batch (or epoch hook)."""
        context = _batch.current(self)
        if context is None or context[0] is None:
            raise RuntimeError(
                "`self.rng` is only available inside `__getitem__`, "
                "`on_epoch_begin` and `on_epoch_end` of a keras_cool.Sequence."
            )
        return context[0]

    def open_resources(self):
        """Open per-process resources (files, clients). Override it."""

    def close_resources(self):
        """Close what `open_resources` opened. Override it if needed."""

    def epoch_permutation(self, num_samples):
        """A permutation of `range(num_samples)` drawn from (seed, epoch)."""
        epoch = self.epoch
        runtime = self._kc_runtime()
        key = (self.seed, epoch, int(num_samples))
        cached = runtime.permutation
        if cached is None or cached[0] != key:
            sequence = _batch.seed_sequence(
                self.seed, _batch.PERMUTATION, epoch
            )
            rng = np.random.Generator(np.random.PCG64(sequence))
            cached = (key, rng.permutation(int(num_samples)))
            runtime.permutation = cached
        return cached[1]

    # ----------------------------------------------------------- Keras API
    def __getitem__(self, index):
        if _batch.current(self) is not None:
            raise NotImplementedError(
                f"{type(self).__qualname__} must implement `__getitem__`."
            )
        return self._kc_getitem(index)

    def __len__(self):
        if _batch.current(self) is None:
            return self._kc_len()
        if _is_user(type(self).__len__):
            raise NotImplementedError("Sequence has no base `__len__`.")
        total = self._kc_total()
        if total is None:
            raise TypeError("This Sequence is infinite (num_batches is None).")
        return total

    @property
    def num_batches(self):
        if _batch.current(self) is not None:
            return self._kc_total()
        return self._kc_length()

    def on_epoch_begin(self):
        if _batch.current(self) is None:
            self._kc_on_epoch_begin()

    def on_epoch_end(self):
        if _batch.current(self) is None:
            self._kc_on_epoch_end()

    def __iter__(self):
        self.on_epoch_begin()
        try:
            length = self.num_batches
            positions = itertools.count() if length is None else range(length)
            for position in positions:
                yield self[position]
        finally:
            self.on_epoch_end()

    # ------------------------------------------------------ state and life
    def get_state(self):
        """`{"seed", "epoch", "position"}`: where the next epoch resumes.

        `position` counts the batches of this epoch already handed out in
        order. Under `fit`, Keras pulls a few batches ahead of training; to
        checkpoint exactly what was trained, set `position` yourself from
        the batch number seen in a callback.
        """
        runtime = self._kc_runtime()
        with runtime.lock:
            self._kc_maybe_advance(runtime)
            prefix = 0
            while prefix in runtime.served:
                prefix += 1
            return {
                "seed": self.seed,
                "epoch": self._kc_epoch,
                "position": self._kc_offset + prefix,
            }

    def set_state(self, state):
        """Resume from `get_state()`: the next batch is `position` of `epoch`.

        Until that epoch ends, `len(self)` counts the remaining batches, so
        resume with one `fit(..., epochs=1)` for the rest of the epoch, then
        `fit` the following epochs.
        """
        if not isinstance(state, dict) or set(state) != set(_STATE_KEYS):
            raise ValueError(
                f"set_state() expects the dict from get_state() with keys "
                f"{list(_STATE_KEYS)}; received {state!r}."
            )
        for key in _STATE_KEYS:
            _check_int(f"state[{key!r}]", state[key], 0)
        runtime = self._kc_runtime()
        with runtime.lock:
            self._kc_close_pool(runtime)
            self.seed = state["seed"]
            self._kc_epoch = state["epoch"]
            self._kc_offset = 0
            order = self._kc_order(state["epoch"])
            if order is not None and state["position"] > len(order):
                raise ValueError(
                    f"state['position']={state['position']} is past the end "
                    f"of the epoch ({len(order)} batches)."
                )
            self._kc_offset = state["position"]
            runtime.served = set()
            runtime.last_position = None

    def close(self):
        """Stop the workers and close this process's resources."""
        runtime = self._kc_runtime()
        with runtime.lock:
            self._kc_close_pool(runtime)
            _batch.close_resources(self, runtime)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __getstate__(self):
        state = dict(self.__dict__)
        runtime = state.get("_kc_rt")
        if runtime is not None:
            state = _batch.strip_resources(state, runtime)
        return state

    # ------------------------------------------------------------ internal
    def _kc_runtime(self):
        runtime = self.__dict__.get("_kc_rt")
        if runtime is None or runtime.pid != os.getpid():
            if runtime is not None:  # inherited across fork: drop handles
                self.__dict__.update(
                    _batch.strip_resources(self.__dict__, runtime)
                )
            runtime = _Runtime()
            self.__dict__["_kc_rt"] = runtime
            if "seed" not in self.__dict__:
                warnings.warn(
                    f"{type(self).__qualname__} should call "
                    "`super().__init__(**kwargs)` in its constructor; without "
                    "it, keras_cool.Sequence uses its defaults and a seed "
                    "drawn from the global NumPy generator.",
                    stacklevel=3,
                )
                self.seed = int(np.random.randint(0, 2**31 - 1))
        return runtime

    def _kc_update_state(self, other):
        """In a persistent worker: take `other`'s state, keep resources."""
        runtime = self._kc_runtime()
        keep = set(runtime.resource_backup) | {"_kc_rt"}
        for name in list(self.__dict__):
            if name not in keep and name not in other.__dict__:
                del self.__dict__[name]
        for name, value in other.__dict__.items():
            if name not in keep:
                self.__dict__[name] = value

    def _kc_total(self):
        """The user's number of batches (None when infinite)."""
        cls = type(self)
        with _batch.raw(self, self._kc_epoch):
            if _is_user(getattr(cls.num_batches, "fget", None)):
                return cls.num_batches.fget(self)
            if _is_user(cls.__len__):
                return cls.__len__(self)
        raise NotImplementedError(
            f"{cls.__qualname__} must implement `__len__` (or a `num_batches` "
            "property returning None for an infinite dataset)."
        )

    def _kc_order(self, epoch):
        """Positions -> user batch indices for `epoch` (None: infinite)."""
        total = self._kc_total()
        if total is None:
            if self.shuffle:
                raise ValueError("shuffle=True needs a finite dataset.")
            return None
        runtime = self._kc_runtime()
        key = (epoch, total, self.shuffle, self.shard, self.seed)
        if runtime.order is not None and runtime.order[0] == key:
            return runtime.order[1]
        if self.shuffle:
            sequence = _batch.seed_sequence(self.seed, _batch.ORDER, epoch)
            rng = np.random.Generator(np.random.PCG64(sequence))
            order = rng.permutation(total)
        else:
            order = np.arange(total)
        if self.shard is not None:
            index, count = self.shard
            order = order[index::count][: total // count]
        runtime.order = (key, order)
        return order

    def _kc_len(self):
        length = self._kc_length()
        if length is None:
            raise TypeError("This Sequence is infinite (num_batches is None).")
        return length

    def _kc_length(self):
        order = self._kc_order(self._kc_epoch)
        return None if order is None else len(order) - self._kc_offset

    def _kc_index(self, epoch, position):
        order = self._kc_order(epoch)
        position = position + self._kc_offset
        if order is not None:
            return int(order[position])
        if self.shard is not None:
            return position * self.shard[1] + self.shard[0]
        return position

    def _kc_maybe_advance(self, runtime):
        length = self._kc_length()
        if length is not None and len(runtime.served) >= length:
            self._kc_epoch += 1
            self._kc_offset = 0
            runtime.served = set()
            runtime.last_position = None

    def _kc_mode(self):
        if self.use_processes and self.num_workers >= 1:
            return "processes"
        if self.num_workers >= 2:
            return "threads"
        return "inline"

    def _kc_pool(self, runtime):
        mode = self._kc_mode()
        if mode == "inline" or not runtime.in_epoch:
            return None
        if runtime.pool is not None and runtime.pool.closed:
            self._kc_close_pool(runtime)  # closed after idling
        if runtime.pool is None:
            if mode == "threads":
                pool = _pools.ThreadPool(self.num_workers)
            else:
                method = self.start_method or _default_start_method()
                pool = _pools.ProcessPool(
                    _batch.dumps_for_workers(self),
                    self.num_workers,
                    method,
                    type(self).__qualname__,
                    reap=not self.persistent_workers,
                )
            runtime.pool = pool
            runtime.finalizer = weakref.finalize(self, pool.close)
        return runtime.pool

    def _kc_close_pool(self, runtime):
        if runtime.pool is not None:
            runtime.finalizer()
            runtime.pool = None
            runtime.finalizer = None
        runtime.generation += 1

    def _kc_getitem(self, position):
        runtime = self._kc_runtime()
        with runtime.lock:
            self._kc_maybe_advance(runtime)
            length = self._kc_length()
            position = operator.index(position)
            if length is not None:
                if position < 0:
                    position += length
                if not 0 <= position < length:
                    raise IndexError(
                        f"batch index {position} is out of range for a "
                        f"Sequence of {length} batches."
                    )
            epoch = self._kc_epoch
            index = self._kc_index(epoch, position)
            pool = self._kc_pool(runtime)
            while pool is not None and not pool.acquire():
                pool = self._kc_pool(runtime)  # it idled out: start again
            try:
                if pool is None:
                    batch = self._kc_compute_here(runtime, epoch, index)
                else:
                    batch = self._kc_from_pool(
                        runtime, pool, epoch, position, index, length
                    )
            except BaseException:
                self._kc_close_pool(runtime)
                raise
            finally:
                if pool is not None:
                    pool.release()
            if runtime.in_epoch:  # reads outside epochs (peeks) don't count
                runtime.served.add(position)
            return batch

    def _kc_compute_here(self, runtime, epoch, index):
        try:
            return _batch.compute(self, runtime, epoch, index, True)
        except Exception as error:
            _batch.add_note(
                error,
                f"keras_cool.Sequence: raised while computing batch {index} "
                f"(epoch {epoch}).",
            )
            raise

    def _kc_from_pool(self, runtime, pool, epoch, position, index, length):
        key = (runtime.generation, epoch, position)
        last = runtime.last_position
        if not pool.has(key):
            if last is not None and position != last + 1:
                self._kc_warn_order(runtime)
            pool.submit(self, runtime, key, epoch, index)
        runtime.last_position = position
        capacity = self.max_queue_size
        end = position + 1 + 2 * capacity
        if length is not None:
            end = min(end, length)
        for ahead in range(position + 1, end):
            if pool.pending() >= capacity:
                break
            ahead_key = (runtime.generation, epoch, ahead)
            if ahead not in runtime.served and not pool.has(ahead_key):
                ahead_index = self._kc_index(epoch, ahead)
                pool.submit(self, runtime, ahead_key, epoch, ahead_index)
        return pool.get(key)

    def _kc_warn_order(self, runtime):
        if runtime.warned_order:
            return
        runtime.warned_order = True
        warnings.warn(
            f"keras_cool.Sequence `{type(self).__qualname__}`: batches are "
            "requested out of order (model.fit(shuffle=True), the default, "
            "shuffles the batch order), so the workers cannot prefetch "
            "ahead. Batches stay reproducible; for speed pass shuffle=False "
            "to fit() and shuffle=True to the Sequence.",
            stacklevel=4,
        )

    def _kc_run_hook(self, name):
        method = getattr(type(self), name)
        if not _is_user(method):
            return False
        epoch = self._kc_epoch
        key = (_batch.HOOK, epoch, _HOOKS.index(name))
        with _batch.user_code(self, epoch, key, True):
            method(self)
        return True

    def _kc_after_hook(self, runtime, ran):
        if runtime.pool is not None and runtime.pool.closed:
            self._kc_close_pool(runtime)
        if not ran or runtime.pool is None:
            return
        # The user's hook may have changed the dataset: drop prefetched
        # batches and send the new state to persistent workers.
        runtime.pool.discard_all()
        runtime.generation += 1
        if isinstance(runtime.pool, _pools.ProcessPool):
            runtime.pool.send_state(_batch.dumps_for_workers(self))

    def _kc_on_epoch_begin(self):
        runtime = self._kc_runtime()
        with runtime.lock:
            self._kc_maybe_advance(runtime)
            runtime.in_epoch = True
            runtime.last_position = None
            self._kc_after_hook(runtime, self._kc_run_hook("on_epoch_begin"))

    def _kc_on_epoch_end(self):
        runtime = self._kc_runtime()
        with runtime.lock:
            self._kc_maybe_advance(runtime)
            ran = self._kc_run_hook("on_epoch_end")
            runtime.in_epoch = False
            if not self.persistent_workers:
                self._kc_close_pool(runtime)
            else:
                self._kc_after_hook(runtime, ran)


def _default_start_method():
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int; received {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; received {value}.")


def _check_shard(shard):
    try:
        index, count = shard
    except (TypeError, ValueError):
        raise ValueError(
            f"shard must be a pair (index, count); received {shard!r}."
        ) from None
    _check_int("shard count", count, 1)
    _check_int("shard index", index, 0)
    if index >= count:
        raise ValueError(
            f"shard index must be < count; received shard={shard!r}."
        )
    return (int(index), int(count))
