"""Computing one batch of a `keras_cool.Sequence`, wherever it runs.

The same function runs in the calling thread, in a worker thread and in a
worker process (see `_seeding` for how the batch is seeded). The pools
get plain callables from here: `compute_in_thread` (a worker thread),
`dumps_for_workers` and `WorkerSource` (a worker process); they hold the
dataset weakly in the main process, so a pool never keeps it alive.
"""

from keras_cool.data import _resources
from keras_cool.data import _runtime
from keras_cool.data import _seeding


def compute(dataset, runtime, epoch, index, reseed_globals):
    """Batch `index` of `epoch`: the user's `__getitem__`, seeded."""
    _resources.open_resources(dataset, runtime)
    key = (_seeding.BATCH, epoch, index)
    with _seeding.user_code(dataset, epoch, key, reseed_globals):
        return type(dataset).__getitem__(dataset, index)


class WorkerSource:
    """What a worker process runs for its copy of a Sequence.

    `compute(epoch, index)`, `update(dataset)` (a new state from the main
    process, resources kept) and `close()` (this process's resources).
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.runtime = _runtime.of(dataset)

    def compute(self, epoch, index):
        return compute(self.dataset, self.runtime, epoch, index, True)

    def update(self, other):
        _runtime.update_state(self.dataset, other)

    def close(self):
        _resources.close_resources(self.dataset, _runtime.of(self.dataset))


def compute_in_thread(ref, epoch, index):
    """`compute` in a worker thread; `ref` is a weak reference."""
    dataset = ref()
    if dataset is None:
        raise RuntimeError("the keras_cool.Sequence was garbage collected.")
    return compute(dataset, _runtime.of(dataset), epoch, index, False)


def dumps_for_workers(ref):
    """The pickled dataset for worker processes; `ref` is weak."""
    return _resources.dumps_for_workers(ref())
