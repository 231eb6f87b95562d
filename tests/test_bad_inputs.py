"""Bad inputs across the public objects: one table per subpackage, one test.

The tables are `tests/<package>/bad_inputs.py` (`ROWS`), built from
`tests/bad_input_rows.py`'s `Row`. Each row gives the exception type, a
message fragment (naming the argument) and the stage where the error must
be raised:

- "construction": the constructor (or the function call) raises;
- "build": building the functional graph raises (symbolic inputs only, no
  data has been seen);
- "on_train_begin": `fit` raises before any training step ran (the test
  checks that the optimizer made no step and no batch ended).

Every row runs in an empty current folder (a fresh `tmp_path`).
"""

import sys

import keras
import numpy as np
import pytest

from keras_cool.data import Sequence
from tests.bad_input_rows import STAGES
from tests.callbacks import bad_inputs as callbacks_table
from tests.capture import bad_inputs as capture_table
from tests.data import bad_inputs as data_table
from tests.layers import bad_inputs as layers_table
from tests.losses import bad_inputs as losses_table
from tests.optimizers import bad_inputs as optimizers_table
from tests.utils import bad_inputs as utils_table

# package -> the public objects its table is about.
TABLES = {
    "callbacks": (
        callbacks_table,
        {"EMA", "Evaluator", "SampleGrid", "VariableScheduler", "LinearWarmup"},
    ),
    "capture": (capture_table, {"OutputCapture"}),
    "data": (data_table, {"Sequence"}),
    "layers": (
        layers_table,
        {
            "VariationalSampling",
            "GaussianMixturePrior",
            "CenterLossDense",
            "GradientSwitch",
            "AdversarialObjective",
            "PositionEmbedding",
        },
    ),  # fmt: skip
    "losses": (losses_table, {"losses"}),
    "optimizers": (optimizers_table, {"WarmupSchedule"}),
    "utils": (utils_table, {"tile_images", "plot_points", "save_png"}),
}
TABLE = [row for table, _ in TABLES.values() for row in table.ROWS]
IDS = [row.id for row in TABLE]


class CountSteps(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_table_size_and_spread():
    assert len(TABLE) >= 130
    assert len(set(IDS)) == len(IDS)
    for package, (table, objects) in TABLES.items():
        assert {row.obj for row in table.ROWS} == objects, package
    assert {row.stage for row in TABLE} == set(STAGES)


@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_bad_input(row, tmp_path, monkeypatch):
    if not sys.platform.startswith("linux") and "proc" in row.id:
        pytest.skip("needs Linux's /proc")
    monkeypatch.chdir(tmp_path)
    if row.prepare is not None:
        row.prepare(monkeypatch)
    if row.stage in ("construction", "build"):
        with pytest.raises(row.error) as info:
            row.run()
    else:
        model, callbacks, kwargs = row.run()
        counter = CountSteps()
        options = dict(batch_size=4, epochs=2, verbose=0)
        options.update(kwargs)
        if isinstance(options["x"], Sequence):
            options.pop("batch_size")
        with pytest.raises(row.error) as info:
            model.fit(callbacks=callbacks + [counter], **options)
        assert counter.batches == 0, "the error came after a training step"
        iterations = getattr(model.optimizer, "iterations", None)
        if iterations is not None:
            assert int(np.asarray(iterations.numpy())) == 0
    assert row.fragment in str(info.value), str(info.value)
