"""Where a Sequence is (`Cursor`) and the order of its batches.

An epoch has a *global order*: the user's batch indices `0 .. count - 1`,
permuted from `(seed, epoch)` when `shuffle=True`, the same on every host.
A pass over the epoch starts at a global position `start` (0, or where a
resumed state left off). Without a shard the Sequence hands out the
positions `0, 1, ...` of `order[start:]`; a shard `(i, n)` keeps every
`n`-th of them from the `i`-th (`order[start:][i::n]`), dropping the last
`(count - start) % n` so every shard has the same length. Position `p` of
shard `(i, n)` is global position `start + i + p * n`.

`Cursor` is the one owner of this position: the epoch, `start`, the
positions served in this epoch, this epoch's count and order (the user's
`__len__` is read once per epoch, and again after an epoch hook ran), and
the `Plan` handed to a pool. The Sequence keeps one (`cursor_of`); its
`get_state` / `set_state` go through `_state`.
"""

import numpy as np

from keras_cool.data import _seeding


def total(dataset, epoch):
    """The user's number of batches (None when infinite), read now."""
    cls = type(dataset)
    with _seeding.raw(dataset, epoch):
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


def draw_order(count, epoch, seed, shuffle, shard, start=0):
    """Positions -> user batch indices of a pass (None: infinite)."""
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
    order = order[start:]
    if shard is not None:
        index, shards = shard
        order = order[index::shards][: len(order) // shards]
    return order


def batch_index(order, start, shard, position):
    """The user's batch index at `position` (see the module docstring)."""
    if order is not None:
        return int(order[position])
    if shard is not None:
        return start + shard[0] + position * shard[1]
    return start + position


class Plan:
    """What a pool needs of one epoch: plain data, no Sequence internals.

    Attributes: `key`, `epoch`, `length` (positions, None: infinite),
    `capacity` (batches prefetched at most), `served` (positions already
    handed out when the plan was made); `index(position)` is the user's
    batch index at `position`. `order` holds the indices of this pass
    (None: infinite, then `start` and `shard` give them).
    """

    def __init__(
        self, key, epoch, order, capacity, served, start=0, shard=None
    ):
        self.key = key
        self.epoch = epoch
        self.order = order
        self.start = start
        self.shard = shard
        self.length = None if order is None else len(order)
        self.capacity = capacity
        self.served = frozenset(served)

    def index(self, position):
        return batch_index(self.order, self.start, self.shard, position)


class Cursor:
    """The epoch position of one Sequence (see the module docstring).

    `epoch`, `start` (global position where this pass began), `served`
    (positions handed out in this epoch), `begun` (the user's
    `on_epoch_begin` ran for this epoch), `last_position` (the last one
    a pool served, to warn about out-of-order requests).
    """

    def __init__(self):
        self.restore(0, 0)

    def restore(self, epoch, start):
        """Make global position `start` of `epoch` the next batch."""
        self.epoch = int(epoch)
        self.start = int(start)
        self.served = set()
        self.begun = False
        self.last_position = None
        self._count = None
        self._counted = False
        self._order = None
        self._plan = None

    def advance(self):
        """The next epoch, from its first batch."""
        self.restore(self.epoch + 1, 0)

    def reread(self):
        """An epoch hook ran: read the user's length again when needed."""
        self._counted = False

    def count(self, dataset):
        """The user's batch count of this epoch, read once."""
        if not self._counted:
            self._count = total(dataset, self.epoch)
            self._counted = True
        return self._count

    def order(self, dataset):
        """This pass's positions -> user batch indices (None: infinite)."""
        count = self.count(dataset)
        key = (self.epoch, self.start, count, dataset.shuffle, dataset.shard)
        key += (dataset.seed,)
        if self._order is None or self._order[0] != key:
            order = draw_order(
                count,
                self.epoch,
                dataset.seed,
                dataset.shuffle,
                dataset.shard,
                self.start,
            )
            self._order = (key, order)
        return self._order[1]

    def length(self, dataset):
        """Positions of this pass (None: infinite)."""
        order = self.order(dataset)
        return None if order is None else len(order)

    def complete(self, dataset):
        """Whether every position of this pass was served."""
        left = self.length(dataset)
        return left is not None and len(self.served) >= left

    def index(self, dataset, position):
        order = self.order(dataset)
        return batch_index(order, self.start, dataset.shard, position)

    def prefix(self):
        """Positions served in order from the first: where to resume."""
        prefix = 0
        while prefix in self.served:
            prefix += 1
        return prefix

    def plan(self, dataset, generation):
        """This epoch's `Plan`, made again when anything changed."""
        order = self.order(dataset)
        capacity = dataset.max_queue_size
        key = (generation, self.epoch, self.start, id(order), dataset.shard)
        key += (capacity,)
        if self._plan is None or self._plan.key != key:
            self._plan = Plan(
                key,
                self.epoch,
                order,
                capacity,
                self.served,
                self.start,
                dataset.shard,
            )
        return self._plan

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_order=None, _plan=None)  # caches, rebuilt on use
        return state


def cursor_of(dataset):
    """`dataset`'s cursor, made if missing (no `super().__init__` call)."""
    cursor = dataset.__dict__.get("_kc_cursor")
    if cursor is None:
        cursor = dataset.__dict__["_kc_cursor"] = Cursor()
    return cursor
