"""Atomic writes under faults, with the real writers (EMA state, best
weights, PNG frames): a crash at any stage leaves the previous file
loadable and no temporary file visible; file modes match `model.save`'s."""

import io
import os

import keras
import numpy as np
import pytest

from keras_cool import _io
from keras_cool.callbacks import Evaluator
from keras_cool.callbacks import ExponentialMovingAverage
from keras_cool.utils import save_png

X = np.random.RandomState(0).rand(8, 4).astype("float32")
Y = np.random.RandomState(1).rand(8, 2).astype("float32")
STAGES = ["create", "write", "chmod", "replace"]


class Crash(Exception):
    pass


class Cutoff(io.RawIOBase):
    """A file that takes `limit` bytes, then raises (a crash mid-write)."""

    def __init__(self, file, limit, error):
        self.file, self.limit, self.error = file, limit, error

    def writable(self):
        return True

    def seekable(self):
        return self.file.seekable()

    def tell(self):
        return self.file.tell()

    def seek(self, *args):
        return self.file.seek(*args)

    def write(self, data):
        if self.file.tell() + len(data) > self.limit:
            self.file.write(
                bytes(data[: max(0, self.limit - self.file.tell())])
            )
            self.file.flush()
            raise self.error("crash mid-write")
        return self.file.write(data)

    def close(self):
        self.file.close()
        super().close()


def inject(monkeypatch, stage, error):
    """Makes `atomic_write` fail at `stage` (for the file-object mode)."""
    if stage == "create":

        def fail(*args, **kwargs):
            raise error("crash creating the temporary file")

        monkeypatch.setattr(_io.tempfile, "mkstemp", fail)
        monkeypatch.setattr(_io.tempfile, "mkdtemp", fail)
    elif stage == "write":
        real = os.fdopen
        monkeypatch.setattr(
            _io.os, "fdopen", lambda fd, mode: Cutoff(real(fd, mode), 40, error)
        )
    elif stage == "chmod":

        def fail(*args, **kwargs):
            raise error("crash at chmod")

        monkeypatch.setattr(_io.os, "chmod", fail)
    else:

        def fail(*args, **kwargs):
            raise error("crash at rename")

        monkeypatch.setattr(_io.os, "replace", fail)


def visible(folder):
    return sorted(os.listdir(folder))


def trained():
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    ema = ExponentialMovingAverage(decay=0.5)
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[ema])
    return model, ema


@pytest.mark.parametrize("error", [Crash, KeyboardInterrupt])
@pytest.mark.parametrize("stage", STAGES)
def test_ema_state_crash(tmp_path, monkeypatch, stage, error):
    model, ema = trained()
    path = str(tmp_path / "ema.npz")
    ema.save_state(path)
    before = ema.ema_weights()
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[ema])
    with monkeypatch.context() as patch:
        inject(patch, stage, error)
        with pytest.raises(error):
            ema.save_state(path)
    assert visible(tmp_path) == ["ema.npz"]
    fresh = ExponentialMovingAverage()
    fresh.set_model(model)
    fresh.load_state(path)
    for a, b in zip(fresh.ema_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("error", [Crash, KeyboardInterrupt])
@pytest.mark.parametrize("stage", STAGES)
def test_png_crash(tmp_path, monkeypatch, stage, error):
    from PIL import Image

    path = str(tmp_path / "frame.png")
    first = np.arange(64, dtype="uint8").reshape(8, 8)
    save_png(first, path)
    with monkeypatch.context() as patch:
        inject(patch, stage, error)
        with pytest.raises(error):
            save_png(np.zeros((64, 64), "uint8") + 7, path)
    assert visible(tmp_path) == ["frame.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(path)), first)


@pytest.mark.parametrize("error", [Crash, KeyboardInterrupt])
@pytest.mark.parametrize("stage", ["create", "write", "chmod", "replace"])
def test_best_weights_crash(tmp_path, monkeypatch, stage, error):
    model, _ = trained()
    path = str(tmp_path / "best.weights.h5")
    evaluator = Evaluator(lambda m: 0.0, filepath=path)
    evaluator.set_model(model)
    evaluator._save(model)
    saved = [np.array(w) for w in model.get_weights()]
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    with monkeypatch.context() as patch:
        if stage == "write":
            real = model.save_weights

            def half(target, **kwargs):
                real(target, **kwargs)
                with open(target, "r+b") as f:
                    f.truncate(100)
                raise error("crash mid-write")

            patch.setattr(model, "save_weights", half)
        else:
            inject(patch, stage, error)
        with pytest.raises(error):
            evaluator._save(model)
    assert visible(tmp_path) == ["best.weights.h5"]
    model.load_weights(path)
    for a, b in zip(model.get_weights(), saved):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_modes_match_model_save(tmp_path, umask):
    model, ema = trained()
    old = os.umask(umask)
    try:
        model.save(str(tmp_path / "model.keras"))
        expected = os.stat(tmp_path / "model.keras").st_mode & 0o777
        ema.save_state(str(tmp_path / "ema.npz"))
        save_png(np.zeros((2, 2), "uint8"), str(tmp_path / "f.png"))
        evaluator = Evaluator(
            lambda m: 0.0, filepath=str(tmp_path / "b.weights.h5")
        )
        evaluator._save(model)
    finally:
        os.umask(old)
    assert expected == 0o666 & ~umask
    for name in ("ema.npz", "f.png", "b.weights.h5"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == expected, name
