import importlib

import keras
import numpy as np
import pytest

from keras_cool.capture import tag
from keras_cool.capture.output_capture import OutputCapture


def test_capture_without_an_active_capture_returns_the_tensor():
    x = np.arange(3.0)
    assert tag.capture("scores", x) is x
    assert tag.capture(None, x) is x  # the name is only checked when active


def test_pushed_recorders_receive_tags_until_popped():
    x, y = np.zeros(2), np.ones(2)
    outer, inner = [], []

    def record_outer(name, tensor):
        outer.append((name, tensor))

    def record_inner(name, tensor):
        inner.append((name, tensor))

    tag.push(record_outer)
    try:
        assert tag.capture("a", x) is x
        tag.push(record_inner)
        try:
            assert tag.capture("b", y) is y
        finally:
            tag.pop(record_inner)
        tag.capture("c", x)
    finally:
        tag.pop(record_outer)
    tag.capture("d", y)
    assert [(n, t is x) for n, t in outer] == [
        ("a", True),
        ("b", False),
        ("c", True),
    ]
    assert inner == [("b", y)]
    tag.pop(record_outer)  # popping twice is harmless


def test_pop_removes_a_bound_method_pushed_from_another_access():
    seen = []

    class Sink:
        def record(self, name, tensor):
            seen.append(name)

    sink = Sink()
    tag.push(sink.record)
    tag.pop(sink.record)  # a new bound-method object, equal to the first
    tag.capture("gone", 1.0)
    assert seen == []


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="push\\(\\) needs a callable"):
        tag.push("not callable")

    def record(name, tensor):
        pass

    tag.push(record)
    try:
        for bad in ("", None, 3):
            with pytest.raises(ValueError, match="non-empty string name"):
                tag.capture(bad, 1.0)
    finally:
        tag.pop(record)


def test_output_capture_pushes_on_entry_and_pops_on_exit():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    seen = []

    def record(name, tensor):
        seen.append(name)

    tag.push(record)
    try:
        with OutputCapture(model, ["d", "t"]) as cap:
            model(np.zeros((1, 2), "float32"))
            tag.capture("t", 5.0)
            tag.capture("other", 6.0)
    finally:
        tag.pop(record)
    assert seen == ["t", "other"]  # the outer recorder still got both
    assert cap.calls["t"] == [5.0]
    assert "other" not in cap.calls
    tag.capture("t", 7.0)  # after exit: not recorded
    assert cap.calls["t"] == [5.0]


def test_public_import_paths():
    import keras_cool
    from keras_cool import OutputCapture as top_output_capture
    from keras_cool import capture as top_capture
    from keras_cool.capture import OutputCapture as sub_output_capture
    from keras_cool.capture import capture as sub_capture

    assert keras_cool.capture is tag.capture
    assert top_capture is sub_capture is tag.capture
    assert keras_cool.OutputCapture is OutputCapture
    assert top_output_capture is sub_output_capture is OutputCapture
    package = importlib.import_module("keras_cool.capture")
    assert package.__all__ == ["OutputCapture", "capture"]
    assert OutputCapture.__module__ == "keras_cool.capture.output_capture"
