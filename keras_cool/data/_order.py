"""Epoch order, shards, served positions and the saved state of a Sequence.

A Sequence hands out *positions* `0 .. len - 1`; the epoch's order maps a
position to the user's batch index. It is drawn from `(seed, epoch)` when
`shuffle=True`, and a shard keeps every `count`-th entry. `dataset._kc_epoch`
counts complete passes and `dataset._kc_offset` is the first position of a
resumed epoch; `runtime.served` holds the positions handed out during this
epoch.

The state dict of `get_state()` is versioned (`VERSION`): besides where to
resume (`seed`, `epoch`, `position`) it records what the position refers
to (`num_batches`, `shuffle`, `shard`), and `check_state` refuses a state
saved for other batches. The worker count and threads/processes may
differ: batches do not depend on them.
"""

import numpy as np

from keras_cool.data import _seeding

VERSION = 1
_POSITION_KEYS = ("seed", "epoch", "position")
_DATASET_KEYS = ("num_batches", "shuffle", "shard")
STATE_KEYS = ("version",) + _POSITION_KEYS + _DATASET_KEYS


def total(dataset):
    """The user's number of batches (None when infinite)."""
    cls = type(dataset)
    with _seeding.raw(dataset, dataset._kc_epoch):
        if _seeding.is_user(getattr(cls.num_batches, "fget", None)):
            return _check_total(
                cls, "num_batches", cls.num_batches.fget(dataset)
            )
        if _seeding.is_user(cls.__len__):
            return _check_total(cls, "__len__", cls.__len__(dataset))
    raise NotImplementedError(
        f"{cls.__qualname__} must implement `__len__` (or a `num_batches` "
        "property returning None for an infinite dataset)."
    )


def _check_total(cls, where, count):
    """The user's batch count: an int >= 1 (None for num_batches)."""
    if count is None and where == "num_batches":
        return None
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise TypeError(
            f"{cls.__qualname__}.{where} must return an int (the number of "
            f"batches), got {type(count).__name__} {count!r}; round it, "
            "e.g. math.ceil(len(x) / batch_size)."
        )
    if count < 1:
        raise ValueError(
            f"{cls.__qualname__}.{where} returned {count}: the Sequence has "
            "no batches (is the data empty, or batch_size larger than the "
            "data with the last batch dropped?)."
        )
    return int(count)


def draw_order(count, epoch, seed, shuffle, shard):
    """Positions -> user batch indices of `epoch` (None: infinite)."""
    if count is None:
        if shuffle:
            raise ValueError("shuffle=True needs a finite dataset.")
        return None
    if shuffle:
        sequence = _seeding.seed_sequence(seed, _seeding.ORDER, epoch)
        order = np.random.Generator(np.random.PCG64(sequence)).permutation(
            count
        )
    else:
        order = np.arange(count)
    if shard is not None:
        index, shards = shard
        order = order[index::shards][: count // shards]
    return order


def epoch_order(dataset, runtime, epoch):
    """`draw_order` for `dataset`, cached per process in `runtime`."""
    count = total(dataset)
    key = (epoch, count, dataset.shuffle, dataset.shard, dataset.seed)
    if runtime.order is not None and runtime.order[0] == key:
        return runtime.order[1]
    order = draw_order(
        count, epoch, dataset.seed, dataset.shuffle, dataset.shard
    )
    runtime.order = (key, order)
    return order


def length(dataset, runtime):
    """Batches left in the current epoch (None: infinite)."""
    order = epoch_order(dataset, runtime, dataset._kc_epoch)
    return None if order is None else len(order) - dataset._kc_offset


class Plan:
    """What a pool needs of one epoch: plain data, no Sequence internals.

    Attributes: `key`, `epoch`, `length` (positions, None: infinite),
    `capacity` (batches prefetched at most), `served` (positions already
    handed out when the plan was made); `index(position)` is the user's
    batch index at `position`.
    """

    def __init__(self, key, epoch, order, offset, shard, capacity, served):
        self.key = key
        self.epoch = epoch
        self.order = order
        self.offset = offset
        self.shard = shard
        self.length = None if order is None else len(order) - offset
        self.capacity = capacity
        self.served = frozenset(served)

    def index(self, position):
        return _batch_index(self.order, self.offset, self.shard, position)


def _batch_index(order, offset, shard, position):
    position = position + offset
    if order is not None:
        return int(order[position])
    if shard is not None:
        return position * shard[1] + shard[0]
    return position


def index(dataset, runtime, position):
    """The user's batch index at `position` of the current epoch."""
    order = epoch_order(dataset, runtime, dataset._kc_epoch)
    offset = dataset._kc_offset
    return _batch_index(order, offset, dataset.shard, position)


def plan(dataset, runtime):
    """The current epoch's `Plan`, made again when anything changed."""
    epoch = dataset._kc_epoch
    order = epoch_order(dataset, runtime, epoch)
    key = (runtime.generation, epoch, dataset._kc_offset, id(order))
    key += (dataset.shard, dataset.max_queue_size)
    if runtime.plan is None or runtime.plan.key != key:
        runtime.plan = Plan(
            key,
            epoch,
            order,
            dataset._kc_offset,
            dataset.shard,
            dataset.max_queue_size,
            runtime.served,
        )
    return runtime.plan


def maybe_advance(dataset, runtime):
    """Start the next epoch once every batch of this one was served."""
    left = length(dataset, runtime)
    if left is not None and len(runtime.served) >= left:
        dataset._kc_epoch += 1
        dataset._kc_offset = 0
        runtime.served = set()
        runtime.last_position = None


def get_state(dataset, runtime):
    """The versioned state dict (see the module docstring)."""
    maybe_advance(dataset, runtime)
    prefix = 0
    while prefix in runtime.served:
        prefix += 1
    return {
        "version": VERSION,
        "seed": dataset.seed,
        "epoch": dataset._kc_epoch,
        "position": dataset._kc_offset + prefix,
        **_dataset_fields(dataset),
    }


def _dataset_fields(dataset):
    shard = None if dataset.shard is None else list(dataset.shard)
    return {
        "num_batches": total(dataset),
        "shuffle": dataset.shuffle,
        "shard": shard,
    }


def check_state(dataset, state):
    """`(seed, epoch, position)` of `state`, or a clear error.

    Accepts the unversioned `{"seed", "epoch", "position"}` dict of
    keras_cool before versioning (without the dataset checks).
    """
    legacy = isinstance(state, dict) and set(state) == set(_POSITION_KEYS)
    if not legacy:
        if not isinstance(state, dict) or "version" not in state:
            raise ValueError(
                f"set_state() expects the dict from get_state() with keys "
                f"{list(STATE_KEYS)}; received {state!r}."
            )
        if state["version"] != VERSION:
            raise ValueError(
                f"set_state() received a state of version "
                f"{state['version']!r}; this keras_cool reads version "
                f"{VERSION}. Save it again with get_state() of this version."
            )
        if set(state) != set(STATE_KEYS):
            raise ValueError(
                f"set_state() expects the dict from get_state() with keys "
                f"{list(STATE_KEYS)}; received keys {sorted(state)}."
            )
    for key in _POSITION_KEYS:
        check_int(f"state[{key!r}]", state[key], 0)
    if not legacy:
        saved = {k: state[k] for k in _DATASET_KEYS}
        saved["shard"] = (
            None if saved["shard"] is None else list(saved["shard"])
        )
        here = _dataset_fields(dataset)
        for key in _DATASET_KEYS:
            if saved[key] != here[key]:
                raise ValueError(
                    f"set_state(): the state was saved with {key}="
                    f"{saved[key]!r}, but this Sequence has {key}="
                    f"{here[key]!r}, so its position would point at other "
                    "batches. Build the Sequence as when the state was "
                    "saved (same length, shuffle and shard)."
                )
    count = total(dataset)
    order = draw_order(
        count, state["epoch"], state["seed"], dataset.shuffle, dataset.shard
    )
    if order is not None and state["position"] > len(order):
        raise ValueError(
            f"state['position']={state['position']} is past the end "
            f"of the epoch ({len(order)} batches)."
        )
    return state["seed"], state["epoch"], state["position"]


def check_int(name, value, minimum):
    """Raise unless `value` is an int (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int; received {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; received {value}.")


def restore(dataset, runtime, seed, epoch, position):
    """Make `position` of `epoch` the next batch (the pool is closed)."""
    dataset.seed = seed
    dataset._kc_epoch = epoch
    dataset._kc_offset = position
    runtime.served = set()
    runtime.last_position = None


def check_shard(shard):
    try:
        index, count = shard
    except (TypeError, ValueError):
        raise ValueError(
            f'shard must be a pair (index, count) or "auto"; received '
            f"{shard!r}."
        ) from None
    check_int("shard count", count, 1)
    check_int("shard index", index, 0)
    if index >= count:
        raise ValueError(
            f"shard index must be < count; received shard={shard!r}."
        )
    return (int(index), int(count))
