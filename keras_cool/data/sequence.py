"""keras_cool.Sequence: a process-safe, reproducible `keras.utils.PyDataset`."""

import functools
import itertools
import multiprocessing
import operator
import warnings
import weakref

import keras
import numpy as np

from keras_cool._backend import collect_before_exit
from keras_cool._backend import process_shard
from keras_cool.data import _batch
from keras_cool.data import _interrupt
from keras_cool.data import _order
from keras_cool.data import _pools
from keras_cool.data import _process_pool
from keras_cool.data import _resources
from keras_cool.data import _runtime
from keras_cool.data import _seeding
from keras_cool.data import _state
from keras_cool.data._checks import check_int
from keras_cool.data._checks import check_shard

_HOOKS = ("on_epoch_begin", "on_epoch_end")


class Sequence(keras.utils.PyDataset):
    """A process-safe, reproducible drop-in base for `PyDataset`/`Sequence`.

    Change the base class of an existing `keras.utils.Sequence` or
    `keras.utils.PyDataset` (same `__len__` / `__getitem__`, same
    `super().__init__(**kwargs)`) and `model.fit(dataset)` becomes safe with
    `workers=N` and `use_multiprocessing=True|False`: a batch's randomness
    (`self.rng`, and the global `numpy.random` / `random` generators)
    depends only on `(seed, epoch, batch index)`; `open_resources()` opens
    files once per worker process; worker errors are re-raised with the
    batch index; `get_state()` / `set_state()` resume mid-epoch, also
    with another number of processes or workers; `on_epoch_begin` and
    `on_epoch_end` run once per epoch on every backend. The docs'
    "Data with Sequence" guide describes the full behaviour, and "How it
    works: Sequence" its design.

    Args:
        workers: Number of workers: threads, or processes with
            `use_multiprocessing=True`. With `workers` <= 1 and no
            multiprocessing, batches are computed in the calling thread.
            Defaults to `1`.
        use_multiprocessing: Whether the workers are processes (needed to
            run CPU-bound Python/NumPy code in parallel). The dataset is
            then sent to each worker by value with cloudpickle (lambdas
            and classes of `__main__` included); open files and other
            per-process handles in `open_resources()`. NumPy arrays of
            256 KiB or more come back in shared memory, as views of a
            reusable block (`KERAS_COOL_SHM_MIN_BYTES` changes the size,
            `off` keeps the pipe). Defaults to `False`.
        max_queue_size: Maximum number of batches prefetched ahead.
            Defaults to `10`.
        seed: Base seed of all randomness. `None` draws one from the global
            NumPy generator at construction (so `keras.utils.set_random_seed`
            makes runs reproducible). Defaults to `None`.
        shuffle: Whether to shuffle the batch order every epoch (seeded).
            Defaults to `False`.
        start_method: Start method of worker processes: `"forkserver"`,
            `"spawn"` or `"fork"`; `None`: `"forkserver"` where available.
            Workers never import `__main__` (the dataset is sent to them by
            value with cloudpickle), so scripts need no
            `if __name__ == "__main__":` guard, and classes defined in a
            notebook or in a script read from stdin work with every
            method. Defaults to `None`.
        persistent_workers: Keep worker processes or threads alive across
            epochs instead of starting them every epoch. Call `close()` (or
            use a `with` block) when done. Defaults to `False`.
        shard: Optional `(index, count)`: keep batches `index`, `index +
            count`, ... of each epoch's order (the same order on every host,
            dropping the last `len % count` batches so every shard has the
            same length). `"auto"`: `(process_index, process_count)` of the
            running multi-process job, read when the data is used (JAX once
            `keras.distribution.initialize` ran, or `torch.distributed`
            when initialised), else `(0, 1)`. Give each process a dataset
            of per-process batches (global batch size / process count).
            Defaults to `None` (every batch).

    Example:

    ```python
    np.save("x.npy", np.random.rand(64, 4).astype("float32"))
    np.save("y.npy", np.random.rand(64, 1).astype("float32"))

    class Arrays(keras_cool.Sequence):
        def __init__(self, batch_size=16, **kwargs):
            super().__init__(**kwargs)
            self.batch_size = batch_size

        def open_resources(self):  # once per worker process
            self.x = np.load("x.npy", mmap_mode="r")
            self.y = np.load("y.npy", mmap_mode="r")

        def __len__(self):
            return 64 // self.batch_size

        def __getitem__(self, index):
            s = slice(index * self.batch_size, (index + 1) * self.batch_size)
            noise = self.rng.normal(0.0, 0.1, (self.batch_size, 4))  # seeded
            return self.x[s] + noise, self.y[s]

    data = Arrays(workers=2, seed=0, shuffle=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(data, epochs=2, shuffle=False, verbose=0)  # data shuffles
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
    _kc_shard = None

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
        check_int("workers", workers, 0)
        check_int("max_queue_size", max_queue_size, 1)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        check_int("seed", seed, 0)
        methods = multiprocessing.get_all_start_methods()
        if start_method is not None and start_method not in methods:
            raise ValueError(
                f"start_method={start_method!r} is not available here; use "
                f"one of {methods} (or None for the default)."
            )
        self.num_workers = workers
        self.use_processes = bool(use_multiprocessing)
        self.seed = seed
        self.shuffle = bool(shuffle)
        self.start_method = start_method
        self.persistent_workers = bool(persistent_workers)
        self.shard = shard
        self._kc_cursor = _order.Cursor()
        collect_before_exit()  # TensorFlow's tf.data exit hang

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("__getitem__", "__len__") + _HOOKS:
            method = getattr(cls, name)
            if method is not getattr(Sequence, name) and not _seeding.is_user(
                method
            ):
                dispatch = getattr(Sequence, f"_kc_{name.strip('_')}")
                setattr(cls, name, _seeding.wrap(method, dispatch))
        prop = getattr(cls, "num_batches")
        if prop is not Sequence.__dict__[
            "num_batches"
        ] and not _seeding.is_user(getattr(prop, "fget", None)):
            if isinstance(prop, property):
                fget = prop.fget
            else:  # a plain class attribute such as `num_batches = None`

                def fget(self, value=prop):
                    return value

            dispatch = Sequence.__dict__["num_batches"].fget
            setattr(cls, "num_batches", property(_seeding.wrap(fget, dispatch)))

    @property
    def shard(self):
        """The `(index, count)` in use, or None (`"auto"` resolved)."""
        if self._kc_shard == "auto":
            return process_shard()
        return self._kc_shard

    @shard.setter
    def shard(self, value):
        if value is not None and not (
            isinstance(value, str) and value == "auto"
        ):
            value = check_shard(value)
        self._kc_shard = value

    # What Keras reads: an in-process dataset, so Keras never starts its own
    # enqueuer. keras_cool's pool is configured by `num_workers` and
    # `use_processes` (the `workers` / `use_multiprocessing` arguments).
    @property
    def workers(self):
        return 1

    @workers.setter
    def workers(self, value):
        check_int("workers", value, 0)
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
        context = _seeding.current(self)
        if context is None:
            return _order.cursor_of(self).epoch
        return context[1]

    @property
    def rng(self):
        """The `numpy.random.Generator` of this batch (or epoch hook)."""
        context = _seeding.current(self)
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
            sequence = _seeding.seed_sequence(
                self.seed, _seeding.PERMUTATION, epoch
            )
            rng = np.random.Generator(np.random.PCG64(sequence))
            cached = (key, rng.permutation(int(num_samples)))
            runtime.permutation = cached
        return cached[1]

    # ----------------------------------------------------------- Keras API
    def __getitem__(self, index):
        if _seeding.current(self) is not None:
            raise NotImplementedError(
                f"{type(self).__qualname__} must implement `__getitem__`."
            )
        return self._kc_getitem(index)

    def __len__(self):
        if _seeding.current(self) is None:
            return self._kc_len()
        if _seeding.is_user(type(self).__len__):
            raise NotImplementedError("Sequence has no base `__len__`.")
        total = _order.total(self, self.epoch)
        if total is None:
            raise TypeError("This Sequence is infinite (num_batches is None).")
        return total

    @property
    def num_batches(self):
        if _seeding.current(self) is not None:
            return _order.total(self, self.epoch)
        runtime = self._kc_runtime()
        with runtime.lock:
            return _order.cursor_of(self).length(self)

    def on_epoch_begin(self):
        if _seeding.current(self) is None:
            self._kc_on_epoch_begin()

    def on_epoch_end(self):
        if _seeding.current(self) is None:
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
        """Where the next batch is, as a versioned dict.

        `{"version": 2, "seed", "epoch", "position", "num_batches",
        "shuffle", "shard"}`. `position` counts the batches of the
        epoch's global order (the same on every host) before the next one:
        the batches handed out in order, times the shard count with a
        `shard`. So a state saved with any shard, worker count or threads
        or processes resumes with any other (see `set_state`). Under
        `fit`, Keras pulls a few batches ahead of training; to checkpoint
        exactly what was trained, set `position` yourself from the batch
        number seen in a callback (times the shard count).
        """
        runtime = self._kc_runtime()
        with runtime.lock:
            return _state.get_state(self, _order.cursor_of(self))

    def set_state(self, state):
        """Resume from `get_state()`: the next batch is `position` of `epoch`.

        The rest of that epoch's global order is split across this
        Sequence's shard as usual (`shard=(i, n)` takes every `n`-th batch
        from the `i`-th, dropping the last `remaining % n` so every shard
        has the same length), so a state saved by N processes resumes with
        M, and one saved with N workers resumes with M. Raises
        `ValueError` for an unknown `version`, or for a state saved with
        another `num_batches` or `shuffle`. Version 1 states and the
        unversioned `{"seed", "epoch", "position"}` dict of earlier
        keras_cool versions are read too. `on_epoch_begin` runs again for
        the resumed epoch, before its first batch. Until that epoch ends,
        `len(self)` counts the remaining batches, so resume with one
        `fit(..., epochs=1)` for the rest of the epoch, then `fit` the
        following epochs.
        """
        runtime = self._kc_runtime()
        with runtime.lock:
            seed, epoch, position = _state.check_state(self, state)
            self._kc_close_pool(runtime)
            self.seed = seed
            _order.cursor_of(self).restore(epoch, position)

    def close(self):
        """Stop the workers and close this process's resources."""
        runtime = self._kc_runtime()
        with runtime.lock:
            self._kc_close_pool(runtime)
            _resources.close_resources(self, runtime)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __getstate__(self):
        state = dict(self.__dict__)
        runtime = state.get("_kc_rt")
        if runtime is not None:
            state = _resources.strip_resources(state, runtime)
        return state

    # ------------------------------------------------------------ internal
    def _kc_runtime(self):
        return _runtime.of(self)

    def _kc_len(self):
        runtime = self._kc_runtime()
        with runtime.lock:
            length = _order.cursor_of(self).length(self)
        if length is None:
            raise TypeError("This Sequence is infinite (num_batches is None).")
        return length

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
        if _interrupt.stopped_by_ctrl_c(runtime.interrupted):
            return None  # batches are computed here until the next epoch
        if runtime.pool is None:
            ref = weakref.ref(self)  # pools must not keep the dataset alive
            name = type(self).__qualname__
            if mode == "threads":
                compute = functools.partial(_batch.compute_in_thread, ref)
                pool = _pools.ThreadPool(compute, self.num_workers, name)
            else:
                pool = _process_pool.ProcessPool(
                    functools.partial(_batch.dumps_for_workers, ref),
                    _batch.WorkerSource,
                    self.num_workers,
                    self.start_method or _default_start_method(),
                    name,
                    reap=not self.persistent_workers,
                )
            runtime.pool = pool
            runtime.finalizer = weakref.finalize(self, pool.close)
        return runtime.pool

    def _kc_close_pool(self, runtime):
        if getattr(runtime.pool, "interrupted", False):
            runtime.interrupted = runtime.pool  # until the next epoch
        if runtime.pool is not None:
            runtime.finalizer()
            runtime.pool = None
            runtime.finalizer = None
        runtime.generation += 1

    def _kc_getitem(self, position):
        runtime = self._kc_runtime()
        with runtime.lock:
            cursor = self._kc_begin(runtime)
            length = cursor.length(self)
            position = operator.index(position)
            if length is not None:
                if position < 0:
                    position += length
                if not 0 <= position < length:
                    raise IndexError(
                        f"batch index {position} is out of range for a "
                        f"Sequence of {length} batches."
                    )
            try:
                batch = self._kc_fetch(runtime, position)
            except BaseException:
                self._kc_close_pool(runtime)
                raise
            if runtime.in_epoch:  # reads outside epochs (peeks) don't count
                cursor.served.add(position)
            return batch

    def _kc_fetch(self, runtime, position):
        cursor = _order.cursor_of(self)
        while True:
            pool = self._kc_pool(runtime)
            if pool is None:
                index = cursor.index(self, position)
                return self._kc_compute_here(runtime, cursor.epoch, index)
            plan = cursor.plan(self, runtime.generation)
            last = cursor.last_position
            if not pool.has(plan, position):
                if last is not None and position != last + 1:
                    self._kc_warn_order(runtime)
            try:
                batch = pool.get(plan, position)
            except _pools.Closed:
                continue  # idled out (a new pool starts) or Ctrl-C
            cursor.last_position = position
            return batch

    def _kc_compute_here(self, runtime, epoch, index):
        try:
            return _batch.compute(self, runtime, epoch, index, True)
        except Exception as error:
            _resources.add_note(
                error,
                f"keras_cool.Sequence: raised while computing batch {index} "
                f"(epoch {epoch}).",
            )
            raise

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

    def _kc_run_hook(self, runtime, name):
        """The user's epoch hook, if any, for the cursor's epoch."""
        method = getattr(type(self), name)
        if not _seeding.is_user(method):
            return
        cursor = _order.cursor_of(self)
        epoch = cursor.epoch
        key = (_seeding.HOOK, epoch, _HOOKS.index(name))
        with _seeding.user_code(self, epoch, key, True):
            method(self)
        cursor.reread()  # the hook may have changed the length
        if runtime.pool is not None and runtime.pool.closed:
            self._kc_close_pool(runtime)
        if runtime.pool is not None:
            # The hook may have changed the dataset: drop prefetched
            # batches and send the new state to persistent workers.
            runtime.pool.refresh()
        runtime.generation += 1

    def _kc_begin(self, runtime):
        """End a finished epoch, then begin the cursor's epoch once.

        The user's hooks run here and nowhere else, so each runs exactly
        once per epoch of the Sequence, whatever Keras calls: Keras peeks
        at a batch before the first epoch (TensorFlow without calling
        `on_epoch_begin` first, JAX and torch calling it once more).
        """
        cursor = _order.cursor_of(self)
        if cursor.complete(self):
            self._kc_run_hook(runtime, "on_epoch_end")
            cursor.advance()
        if not cursor.begun:
            cursor.begun = True
            self._kc_run_hook(runtime, "on_epoch_begin")
        return cursor

    def _kc_on_epoch_begin(self):
        runtime = self._kc_runtime()
        with runtime.lock:
            runtime.in_epoch = True
            _order.cursor_of(self).last_position = None
            runtime.interrupted = None
            if self._kc_mode() == "processes":
                _interrupt.install_interrupt_handler()
            self._kc_begin(runtime)
            if self._kc_mode() == "processes":
                # Start the workers now, in the calling thread: a dataset
                # that cannot be sent to them fails at the start of `fit`
                # with its own error, on every backend (not inside tf.data).
                self._kc_pool(runtime)

    def _kc_on_epoch_end(self):
        runtime = self._kc_runtime()
        with runtime.lock:
            cursor = _order.cursor_of(self)
            if cursor.complete(self):
                self._kc_run_hook(runtime, "on_epoch_end")
                cursor.advance()
            runtime.in_epoch = False
            if not self.persistent_workers:
                self._kc_close_pool(runtime)
            elif runtime.pool is not None and runtime.pool.closed:
                self._kc_close_pool(runtime)


def _default_start_method():
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"
