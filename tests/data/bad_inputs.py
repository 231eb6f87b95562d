"""Bad inputs of keras_cool.data (see tests/bad_input_rows.py)."""

from keras_cool.data import Sequence
from tests.bad_input_rows import C
from tests.bad_input_rows import Row
from tests.bad_input_rows import T
from tests.bad_input_rows import X
from tests.bad_input_rows import Y
from tests.bad_input_rows import model_with


class Batches(Sequence):
    length = 2

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return X[:4], Y[:4]


def sequence_len(value):
    data = Batches()
    data.length = value
    return model_with(), [], dict(x=data)


ROWS = [
    Row(
        "seq-workers",
        "Sequence",
        C,
        lambda: Batches(workers=-1),
        ValueError,
        "workers",
    ),
    Row(
        "seq-workers-float",
        "Sequence",
        C,
        lambda: Batches(workers=2.0),
        TypeError,
        "workers",
    ),
    Row(
        "seq-queue",
        "Sequence",
        C,
        lambda: Batches(max_queue_size=0),
        ValueError,
        "max_queue_size",
    ),
    Row(
        "seq-seed",
        "Sequence",
        C,
        lambda: Batches(seed=-1),
        ValueError,
        "seed",
    ),
    Row(
        "seq-start",
        "Sequence",
        C,
        lambda: Batches(start_method="nope"),
        ValueError,
        "start_method",
    ),
    Row(
        "seq-shard",
        "Sequence",
        C,
        lambda: Batches(shard=3),
        ValueError,
        "shard",
    ),
    Row(
        "seq-len-float",
        "Sequence",
        T,
        lambda: sequence_len(2.5),
        TypeError,
        "__len__",
    ),
    Row(
        "seq-len-zero",
        "Sequence",
        T,
        lambda: sequence_len(0),
        ValueError,
        "__len__",
    ),
    Row(
        "seq-len-none",
        "Sequence",
        T,
        lambda: sequence_len(None),
        TypeError,
        "__len__",
    ),
]
