"""Computing one batch of a `keras_cool.Sequence`, wherever it runs.

The same function runs in the calling thread, in a worker thread and in a
worker process (see `_seeding` for how the batch is seeded).
"""

from keras_cool.data import _resources
from keras_cool.data import _seeding


def compute(dataset, runtime, epoch, index, reseed_globals):
    """Batch `index` of `epoch`: the user's `__getitem__`, seeded."""
    _resources.open_resources(dataset, runtime)
    key = (_seeding.BATCH, epoch, index)
    with _seeding.user_code(dataset, epoch, key, reseed_globals):
        return type(dataset).__getitem__(dataset, index)
