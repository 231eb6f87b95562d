import zipfile

import keras
import numpy as np
import pytest
from keras import ops

from keras_cool._layer_tree import layer_paths
from keras_cool.capture import OutputCapture
from keras_cool.capture import capture


@keras.saving.register_keras_serializable(package="keras_cool_tests")
class Block(keras.layers.Layer):
    """A subclassed layer whose Dense is only reachable inside `call`."""

    def __init__(self, units=3, fail=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.fail = fail
        self.proj = keras.layers.Dense(units, name="proj")

    def build(self, input_shape):
        self.proj.build(input_shape)

    def call(self, x):
        if self.fail:
            raise RuntimeError("forward pass failed")
        h = self.proj(x)
        return capture("block_tag", ops.relu(h)) + 1.0

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_cool_tests")
class Normal(keras.layers.Layer):
    """Seed post 7's layer: the normalised input is an internal tensor."""

    def call(self, x):
        x_normalized = capture("normalized", x / ops.norm(x, axis=-1)[:, None])
        return x_normalized * 2.0


def nested_model():
    inner = keras.Sequential([Block(3, name="block")], name="seq")
    inputs = keras.Input((4,))
    h = keras.layers.Dense(4, name="pre")(inputs)
    outputs = keras.layers.Dense(2, name="head")(inner(h))
    return keras.Model(inputs, outputs, name="outer")


def attention_model(length=6, dim=8):
    inputs = keras.Input((length, dim))
    h = inputs
    for i in range(2):
        mha = keras.layers.MultiHeadAttention(2, 4, name=f"attention_{i}")
        h = keras.layers.LayerNormalization(name=f"norm_{i}")(h + mha(h, h))
    return keras.Model(inputs, h, name="encoder")


def to_numpy(x):
    return ops.convert_to_numpy(x)


def data(*shape):
    return np.random.default_rng(0).normal(size=shape).astype("float32")


def test_mha_probabilities_equal_return_attention_scores():
    model = attention_model()
    x = data(3, 6, 8)
    with OutputCapture(model, "*/softmax*") as cap:
        model(x)
    # Auto-named sublayers: "softmax", "softmax_1", ... hence the globs.
    keys = list(cap.outputs)
    assert [k.split("/")[0] for k in keys] == ["attention_0", "attention_1"]
    h = x
    for i in range(2):
        mha = model.get_layer(f"attention_{i}")
        out, scores = mha(h, h, return_attention_scores=True)
        assert cap[keys[i]].shape == (3, 2, 6, 6)
        np.testing.assert_allclose(
            to_numpy(cap[keys[i]]), to_numpy(scores), 1e-6
        )
        h = model.get_layer(f"norm_{i}")(ops.add(h, out))
    arrays = OutputCapture(model, "*/softmax*").predict(x, batch_size=2)
    np.testing.assert_allclose(arrays[keys[1]], to_numpy(scores), 1e-5, 1e-6)
    np.testing.assert_allclose(arrays["outputs"], to_numpy(h), 1e-5, 1e-5)


def default_named_attention_model(length=6, dim=8):
    """Two MultiHeadAttention layers left with Keras's default names."""
    inputs = keras.Input((length, dim))
    h = inputs
    for _ in range(2):
        mha = keras.layers.MultiHeadAttention(2, 4)
        h = keras.layers.LayerNormalization()(h + mha(h, h))
    return keras.Model(inputs, h)


def reference_scores(model, x):
    """Each MultiHeadAttention's probabilities, from
    `return_attention_scores=True`, in model order."""
    scores, h = [], x
    kinds = (keras.layers.MultiHeadAttention, keras.layers.LayerNormalization)
    layers = [layer for layer in model.layers if isinstance(layer, kinds)]
    for mha, norm in zip(layers[::2], layers[1::2]):
        out, probs = mha(h, h, return_attention_scores=True)
        scores.append(to_numpy(probs))
        h = norm(ops.add(h, out))
    return scores


def test_class_target_captures_every_default_named_attention():
    """`keras.layers.Softmax` reaches the probabilities of every
    MultiHeadAttention, whatever Keras named them."""
    model = default_named_attention_model()
    mha_names = [
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.MultiHeadAttention)
    ]
    assert mha_names[1].endswith("_1")  # Keras's default second name
    x = data(3, 6, 8)
    expected = reference_scores(model, x)
    with OutputCapture(model, keras.layers.Softmax) as cap:
        model(x)
    keys = list(cap.outputs)
    assert [k.split("/")[0] for k in keys] == mha_names
    for key, probs in zip(keys, expected):
        assert tuple(cap[key].shape) == (3, 2, 6, 6)
        np.testing.assert_allclose(to_numpy(cap[key]), probs, 1e-5, 1e-6)
    arrays = OutputCapture(model, keras.layers.Softmax).predict(x, batch_size=3)
    assert sorted(arrays) == sorted(keys + ["outputs"])
    for key, probs in zip(keys, expected):
        np.testing.assert_allclose(arrays[key], probs, 1e-5, 1e-6)


def test_class_target_captures_outputs_of_every_instance():
    model = default_named_attention_model()
    x = data(2, 6, 8)
    with OutputCapture(model, keras.layers.MultiHeadAttention) as cap:
        model(x)
    names = [
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.MultiHeadAttention)
    ]
    assert list(cap.outputs) == names
    for name in names:
        assert tuple(cap[name].shape) == (2, 6, 8)


def test_glob_matches_whole_paths_as_documented():
    """A glob is matched against whole paths: `"*_attention/softmax*"`
    matches `multi_head_attention/softmax...` but not the second layer's
    `multi_head_attention_1/softmax_1`, and says nothing."""
    model = default_named_attention_model()
    paths = [
        p
        for p in OutputCapture(model, "x").layer_paths
        if p.split("/")[-1].startswith("softmax")
    ]
    assert len(paths) == 2
    with OutputCapture(model, "*_attention/softmax*") as cap:
        model(data(2, 6, 8))
    assert list(cap.outputs) == [paths[0]]
    # `*` also matches `/`: "*softmax*" reaches both.
    with OutputCapture(model, "*softmax*") as cap:
        model(data(2, 6, 8))
    assert list(cap.outputs) == paths


def test_class_targets_are_checked():
    model = default_named_attention_model()
    with pytest.raises(TypeError, match="keras.layers.Layer subclass"):
        OutputCapture(model, int)
    with pytest.raises(ValueError, match="No layer of class Conv2D"):
        with OutputCapture(model, keras.layers.Conv2D):
            pass


def test_dense_in_subclassed_layer_in_sequential_in_functional():
    model = nested_model()
    x = data(5, 4)
    assert "seq/block/proj" in OutputCapture(model, "x").layer_paths
    with OutputCapture(model, ["seq/block/proj", "pre"]) as cap:
        y = model(x)
    w1, b1 = (to_numpy(v) for v in model.get_layer("pre").weights)
    proj = model.get_layer("seq").get_layer("block").proj
    w2, b2 = (to_numpy(v) for v in proj.weights)
    expected = (x @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(to_numpy(cap["seq/block/proj"]), expected, 1e-5)
    np.testing.assert_allclose(to_numpy(cap["pre"]), x @ w1 + b1, 1e-5)
    arrays = OutputCapture(model, [proj]).predict(x, batch_size=2)
    np.testing.assert_allclose(arrays["seq/block/proj"], expected, 1e-5)
    np.testing.assert_allclose(arrays["outputs"], to_numpy(y), 1e-5)


def test_tagged_internals_and_predicates():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Normal(name="normal")(inputs))
    x = data(4, 3)
    assert capture("normalized", x) is x  # no capture active: untouched
    with pytest.raises(ValueError, match="'normalized' matches no layer"):
        with OutputCapture(model, "normalized"):
            pass  # no forward pass: the tag never showed up
    expected = x / np.linalg.norm(x, axis=-1, keepdims=True)
    with OutputCapture(
        model, ["norm*", lambda layer: layer.name == "normal"]
    ) as c:
        model(x)
    np.testing.assert_allclose(to_numpy(c["normalized"]), expected, 1e-6)
    np.testing.assert_allclose(to_numpy(c["normal"]), 2 * expected, 1e-6)
    arrays = OutputCapture(model, "normalized").predict(x, batch_size=2)
    np.testing.assert_allclose(arrays["normalized"], expected, 1e-6)


class Stack(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [Block(3, name=f"b{i}") for i in range(2)]

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def test_subclassed_model_built_by_predict():
    model = Stack()
    x = data(4, 3)
    cap = OutputCapture(model, ["b1/proj", "block_tag"])
    arrays = cap.predict(x, batch_size=2)  # builds the model first
    assert sorted(arrays) == [
        "b1/proj",
        "block_tag[0]",
        "block_tag[1]",
        "outputs",
    ]
    expected = np.maximum(arrays["b1/proj"], 0.0) + 1.0
    np.testing.assert_allclose(arrays["outputs"], expected, 1e-6)
    with cap:
        y = model(x)
    np.testing.assert_allclose(to_numpy(y), arrays["outputs"], 1e-5)
    np.testing.assert_allclose(
        to_numpy(cap["block_tag[1]"]), arrays["block_tag[1]"], 1e-5
    )


def test_shared_layer_gives_one_entry_per_call():
    dense = keras.layers.Dense(4, name="shared")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, dense(dense(inputs)))
    x = data(2, 4)
    with OutputCapture(model, "shared") as cap:
        y = model(x)
    assert len(cap.calls["shared"]) == 2
    assert sorted(cap.outputs) == ["shared[0]", "shared[1]"]
    np.testing.assert_allclose(to_numpy(cap["shared[1]"]), to_numpy(y))
    np.testing.assert_allclose(
        to_numpy(dense(cap["shared[0]"])), to_numpy(y), 1e-6
    )


@pytest.mark.parametrize("predicate_first", [False, True])
def test_string_and_predicate_targets_mixed(predicate_first):
    model = nested_model()
    x = data(3, 4)
    targets = ["pre", lambda layer: layer.name == "head"]
    if predicate_first:
        targets.reverse()
    with OutputCapture(model, targets) as cap:
        y = model(x)
    assert set(cap.outputs) == {"pre", "head"}
    w, b = (to_numpy(v) for v in model.get_layer("pre").weights)
    np.testing.assert_allclose(to_numpy(cap["pre"]), x @ w + b, 1e-5)
    np.testing.assert_allclose(to_numpy(cap["head"]), to_numpy(y), 1e-6)
    # A string target that matches nothing is still reported.
    with pytest.raises(ValueError, match="'nothing_like_it' matches no"):
        with OutputCapture(model, [*targets, "nothing_like_it"]):
            model(x)


@keras.saving.register_keras_serializable(package="keras_cool_tests")
class MarkedDense(keras.layers.Dense):
    """A Dense that notes the first input value of each call, in order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def call(self, x):
        if not isinstance(x, keras.KerasTensor):
            self.seen.append(float(to_numpy(x)[0, 0]))
        return super().call(x)


def test_shared_layer_entries_follow_the_order_of_the_calls():
    a, b = data(2, 3), data(2, 3) + 10.0
    # Subclassed model: the calls run in the order they are written.
    dense = keras.layers.Dense(2, name="shared")

    class TwoCalls(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.shared = dense

        def call(self, inputs):
            return [self.shared(inputs[0]), self.shared(inputs[1])]

    model = TwoCalls()
    model([a, b])
    with OutputCapture(model, "shared") as cap:
        ya, yb = model([a, b])
    np.testing.assert_allclose(to_numpy(cap["shared[0]"]), to_numpy(ya))
    np.testing.assert_allclose(to_numpy(cap["shared[1]"]), to_numpy(yb))
    # Functional model: Keras picks the order; the entries follow it.
    dense = MarkedDense(2, name="shared")
    xa, xb = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([xa, xb], [dense(xa), dense(xb)])
    dense.seen.clear()
    with OutputCapture(model, "shared") as cap:
        ya, yb = model([a, b])
    by_input = {float(a[0, 0]): ya, float(b[0, 0]): yb}
    assert sorted(dense.seen) == sorted(by_input)
    for entry, first in zip(cap.calls["shared"], dense.seen):
        np.testing.assert_allclose(to_numpy(entry), to_numpy(by_input[first]))
    # As the docstring says: here entry 0 is the call on `b`.
    np.testing.assert_allclose(to_numpy(cap["shared[0]"]), to_numpy(yb))


def test_model_is_left_exactly_as_it_was(tmp_path):
    model = nested_model()
    x = data(3, 4)
    before = to_numpy(model(x))
    config = keras.saving.serialize_keras_object(model)
    model.save(tmp_path / "before.keras")
    layers = [model, *_all_layers(model)]
    state = [dict(vars(layer)) for layer in layers]
    with OutputCapture(model, ["*proj", "pre", "block_tag"]) as cap:
        model(x)
    assert {"seq/block/proj", "pre", "block_tag"} == set(cap.outputs)
    block = model.get_layer("seq").get_layer("block")
    block.fail = True
    with pytest.raises(RuntimeError, match="forward pass failed"):
        with OutputCapture(model, ["*proj", "seq/block"]):
            model(x)
    block.fail = False
    for layer, old in zip(layers, state):
        assert "call" not in vars(layer)
        assert set(vars(layer)) == set(old), layer.name
        assert layer.call.__func__ is type(layer).call
    np.testing.assert_array_equal(to_numpy(model(x)), before)
    assert keras.saving.serialize_keras_object(model) == config
    model.save(tmp_path / "after.keras")
    for name in ("before", "after"):
        with zipfile.ZipFile(tmp_path / f"{name}.keras") as archive:
            state.append(archive.read("config.json"))
    assert state[-1] == state[-2]
    loaded = keras.saving.load_model(tmp_path / "after.keras")
    np.testing.assert_allclose(to_numpy(loaded(x)), before, 1e-6)


def _all_layers(model):
    return [pair[0] for pair in layer_paths(model).values()]


def test_errors_name_the_problem():
    model = nested_model()
    x = data(2, 4)
    with pytest.raises(ValueError, match="Close matches.*seq/block/proj"):
        with OutputCapture(model, "seq/blok/proj"):
            model(x)
    with pytest.raises(ValueError, match="Available paths.*'pre'"):
        with OutputCapture(model, "nothing_like_it"):
            model(x)
    with pytest.raises(ValueError, match="not called during the forward"):
        with OutputCapture(model, "head"):
            model.get_layer("pre")(x)
    with pytest.raises(ValueError, match="not part of model"):
        OutputCapture(model, keras.layers.Dense(2)).__enter__()
    with pytest.raises(ValueError, match="Predicate .* matches no layer"):
        with OutputCapture(model, lambda layer: False):
            pass
    with pytest.raises(TypeError, match="A target is"):
        OutputCapture(model, 3)
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        with OutputCapture(unbuilt, "dense"):
            pass


def test_a_failed_capture_stops_recording_tags():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Normal(name="normal")(inputs))
    x = data(2, 3)
    failed = OutputCapture(model, "normalized")
    with pytest.raises(RuntimeError, match="inside"):
        with failed:
            raise RuntimeError("inside")
    with pytest.raises(ValueError, match="'normalized' matches no layer"):
        with OutputCapture(model, ["normal", "normalized"]) as cap:
            pass  # exits cleanly, but the tag never showed up
    model(x)
    assert failed.calls == {} and cap.calls == {}
    with failed:
        model(x)
    assert list(failed.calls) == ["normalized"]


@pytest.mark.backends("tensorflow", "jax")
def test_predict_does_not_retrace():
    model = attention_model()
    cap = OutputCapture(model, "*softmax*")
    x = data(8, 6, 8)
    first = cap.predict(x, batch_size=4)
    traces = cap.trace_count
    assert traces >= 1
    for _ in range(3):
        again = cap.predict(x, batch_size=4)
    assert cap.trace_count == traces
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert "call" not in vars(model.get_layer("attention_0"))


def test_predict_follows_the_models_compile_settings():
    model = nested_model()
    model.compile(run_eagerly=True)
    x = data(6, 4)
    cap = OutputCapture(model, "seq/block/proj")
    arrays = cap.predict(x, batch_size=2)
    assert cap._runner.run_eagerly
    first = cap.trace_count
    cap.predict(x, batch_size=2)
    assert cap.trace_count - first == 3  # eager: Python runs once per batch
    np.testing.assert_allclose(
        arrays["outputs"], model.predict(x, verbose=0), 1e-5, 1e-6
    )
