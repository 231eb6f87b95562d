"""Test a Keras layer in one call: build, call, config, save, fit.

Written on the public Keras API only, so it runs unchanged on the
TensorFlow, JAX and PyTorch backends and never imports a backend itself.
Every check raises `AssertionError` with a message that names the layer,
the check that failed and what to do about it.
"""

import inspect
import json
import os
import tempfile

import keras
import numpy as np

__all__ = [
    "run_layer_test",
    "run_model_saving_test",
    "run_serialization_test",
]

_SIMPLE = (bool, int, float, str, type(None))


def _fail(cls, message):
    name = cls.__name__ if isinstance(cls, type) else type(cls).__name__
    raise AssertionError(f"run_layer_test({name}): {message}")


def _to_json(value):
    """Normalise a config so tuples, lists and nested objects compare."""
    return json.loads(
        json.dumps(keras.saving.serialize_keras_object(value), sort_keys=True)
    )


def _is_simple(value):
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, _SIMPLE) for v in value)
    return isinstance(value, _SIMPLE)


def _init_arguments(cls):
    """Named `__init__` arguments (no `self`, `*args`, `**kwargs`)."""
    params = inspect.signature(cls.__init__).parameters.values()
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in params if p.name != "self" and p.kind not in skip]


def _is_keras_own(cls):
    return cls.__module__.split(".")[0] == "keras"


def _check_registered(cls):
    if _is_keras_own(cls):
        return  # Keras's own classes load by module path.
    name = keras.saving.get_registered_name(cls)
    if ">" not in name or keras.saving.get_registered_object(name) is not cls:
        _fail(
            cls,
            f"class `{cls.__name__}` is not registered for serialization, so "
            "`keras.saving.load_model` cannot find it in safe mode. Decorate "
            "it with `@keras.saving.register_keras_serializable("
            'package="your_package")`.',
        )


def run_serialization_test(instance, init_kwargs=None):
    """Check a Keras object's config round trips.

    Checks that the class is registered; that `get_config()` holds every
    named `__init__` argument (and the values given in `init_kwargs`);
    that `from_config(get_config())` gives an equal config; and that
    `keras.saving.serialize_keras_object` → JSON →
    `keras.saving.deserialize_keras_object` gives an equal config.

    Args:
        instance: the object to check (a layer, loss, callback, ...).
        init_kwargs: optional dict, the arguments `instance` was built
            with; simple values (numbers, strings, tuples of them) must
            come back unchanged from `get_config()`. Defaults to `None`.

    Returns:
        The object revived from JSON.
    """
    cls = type(instance)
    _check_registered(cls)
    config = instance.get_config()
    # Keras's own classes leave unset optional arguments out on purpose.
    named = [] if _is_keras_own(cls) else _init_arguments(cls)
    missing = [a for a in named if a not in config]
    if missing:
        _fail(
            cls,
            f"get_config() is missing the __init__ argument(s) {missing}; "
            "a saved model would silently lose them. Add them to the dict "
            "that get_config() returns.",
        )
    for key, value in (init_kwargs or {}).items():
        if key not in config:
            _fail(cls, f"get_config() is missing the argument `{key}`.")
        got = config[key]
        if (
            _is_simple(value)
            and _is_simple(got)
            and _to_json(got) != _to_json(value)
        ):
            _fail(
                cls,
                f"get_config()[{key!r}] is {got!r} but the layer was built "
                f"with {key}={value!r}.",
            )
    expected = _to_json(config)
    try:
        clone = cls.from_config(config)
    except Exception as error:  # Re-raised with the layer's name.
        _fail(cls, f"from_config(get_config()) raised {error!r}.")
    if _to_json(clone.get_config()) != expected:
        _fail(
            cls,
            "from_config(get_config()).get_config() differs from "
            f"get_config():\n  {_to_json(clone.get_config())}\n  {expected}",
        )
    text = json.dumps(keras.saving.serialize_keras_object(instance))
    revived = keras.saving.deserialize_keras_object(json.loads(text))
    if type(revived) is not cls:
        _fail(cls, f"JSON round trip gave a {type(revived).__name__}.")
    if _to_json(revived.get_config()) != expected:
        _fail(cls, "the JSON round trip changed the config.")
    return revived


def _map(fn, data):
    if isinstance(data, dict):
        return {k: fn(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [fn(v) for v in data]
    return fn(data)


def _flat(data):
    if isinstance(data, dict):
        return [data[k] for k in sorted(data)]
    if isinstance(data, (list, tuple)):
        return list(data)
    return [data]


def _call(layer, data, call_kwargs):
    if isinstance(data, dict):
        return layer(**data, **call_kwargs)
    return layer(data, **call_kwargs)


def _symbolic_inputs(data):
    def make(array):
        array = np.asarray(array)
        return keras.Input(shape=array.shape[1:], dtype=str(array.dtype))

    return _map(make, data)


def _numpy(tensors):
    return [keras.ops.convert_to_numpy(t) for t in _flat(tensors)]


def _assert_close(cls, expected, actual, what, atol, rtol):
    if len(expected) != len(actual):
        _fail(cls, f"{what}: {len(expected)} outputs became {len(actual)}.")
    for i, (a, b) in enumerate(zip(expected, actual)):
        if a.shape != b.shape or not np.allclose(a, b, atol=atol, rtol=rtol):
            worst = (
                np.max(np.abs(a.astype("float64") - b.astype("float64")))
                if a.shape == b.shape
                else f"shape {a.shape} vs {b.shape}"
            )
            _fail(cls, f"{what}: output {i} differs (max abs diff {worst}).")


def run_model_saving_test(model, input_data, atol=1e-6, rtol=1e-6):
    """Save a model to `.keras`, load it in safe mode, compare outputs.

    Args:
        model: a built `keras.Model`.
        input_data: inputs the model accepts (array, list or dict).
        atol: absolute tolerance for the output comparison. Defaults to
            `1e-6`.
        rtol: relative tolerance for the output comparison. Defaults to
            `1e-6`.

    Returns:
        The loaded model.
    """
    expected = _numpy(model(input_data, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        try:
            loaded = keras.saving.load_model(path)  # safe_mode=True
        except Exception as error:  # Re-raised with the model's name.
            _fail(
                model,
                f"keras.saving.load_model(safe_mode=True) raised {error!r}. "
                "Register every custom object and avoid Lambda layers.",
            )
    actual = _numpy(loaded(input_data, training=False))
    _assert_close(model, expected, actual, "after .keras save/load", atol, rtol)
    return loaded


def _check_shapes(cls, outputs, expected_output_shape, what):
    if expected_output_shape is None:
        return
    expected = expected_output_shape
    if not (isinstance(expected, list) or isinstance(expected, dict)):
        expected = [expected]
    got = [tuple(t.shape) for t in _flat(outputs)]
    want = [tuple(s) for s in _flat(expected)]
    for g, w in zip(got, want):
        if len(g) != len(w) or any(
            a is not None and b is not None and a != b for a, b in zip(g, w)
        ):
            _fail(cls, f"{what} output shape {got} != expected {want}.")
    if len(got) != len(want):
        _fail(cls, f"{what} gave {len(got)} outputs, expected {len(want)}.")


def _check_counts(cls, layer, trainable, non_trainable, losses):
    checks = [
        ("trainable weights", layer.trainable_weights, trainable),
        ("non-trainable weights", layer.non_trainable_weights, non_trainable),
        ("losses (from add_loss)", layer.losses, losses),
    ]
    for what, items, expected in checks:
        if expected is not None and len(items) != expected:
            _fail(cls, f"expected {expected} {what}, found {len(items)}.")
    for loss in layer.losses:
        if len(loss.shape) != 0:
            _fail(
                cls,
                f"add_loss() got a tensor of shape {tuple(loss.shape)}; Keras "
                "sums non-scalar losses (and torch rejects them). Reduce the "
                "loss to a scalar inside the layer, e.g. with keras.ops.mean.",
            )


def run_layer_test(
    layer_cls,
    init_kwargs=None,
    input_data=None,
    input_shape=None,
    call_kwargs=None,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    expected_num_losses=None,
    run_saving_check=True,
    run_training_check=True,
    atol=1e-6,
    rtol=1e-6,
):
    """Test a Keras layer class in one call, on the current backend.

    In order, it checks: registration and config round trips
    (`run_serialization_test`); `build()` alone (single-tensor inputs); a
    symbolic call on `keras.Input`; an eager call, with the numbers of
    trainable / non-trainable weights and of `add_loss` losses (each a
    scalar); a `.keras` save and `keras.saving.load_model` in safe mode
    giving equal outputs; one `fit` step with a finite loss. Any failure
    raises `AssertionError` naming the layer and the check.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments. Defaults to `None`
            (none).
        input_data: numpy input: an array, a list of arrays (passed as one
            list argument) or a dict of arrays (passed as keyword
            arguments). The first axis is the batch. Defaults to `None`.
        input_shape: instead of `input_data`, a shape (with batch size)
            for random float32 data. Defaults to `None`.
        call_kwargs: dict of non-tensor keyword arguments for `call`.
            Defaults to `None` (none).
        expected_output_shape: shape, or list of shapes, with batch size;
            `None` skips the check. Defaults to `None`.
        expected_num_trainable_weights: int, or None to skip. Defaults to
            `None`.
        expected_num_non_trainable_weights: int, or None to skip. Defaults
            to `None`.
        expected_num_losses: int, or None to skip. Defaults to `None`.
        run_saving_check: whether to save and reload a model. Defaults to
            `True`.
        run_training_check: whether to `fit` one step. Float outputs are
            fitted to zeros with MSE; the layer's own losses are added.
            Defaults to `True`.
        atol: absolute tolerance for comparing outputs. Defaults to
            `1e-6`.
        rtol: relative tolerance for comparing outputs. Defaults to
            `1e-6`.

    Returns:
        The eagerly called layer instance.

    Example:

    ```python
    from keras_cool.testing import run_layer_test

    run_layer_test(
        keras.layers.Dense,
        init_kwargs={"units": 3},
        input_shape=(2, 4),
        expected_output_shape=(2, 3),
        expected_num_trainable_weights=2,
    )
    ```
    """
    init_kwargs = dict(init_kwargs or {})
    call_kwargs = dict(call_kwargs or {})
    if (input_data is None) == (input_shape is None):
        raise ValueError("Pass exactly one of `input_data` or `input_shape`.")
    if input_data is None:
        input_data = np.random.default_rng(0).normal(size=input_shape)
        input_data = input_data.astype("float32")
    input_data = _map(np.asarray, input_data)

    run_serialization_test(layer_cls(**init_kwargs), init_kwargs)

    if not isinstance(input_data, (list, tuple, dict)):
        layer = layer_cls(**init_kwargs)
        layer.build(input_data.shape)
        if not layer.built:
            _fail(layer_cls, "build() did not set `self.built = True`.")

    symbolic_inputs = _symbolic_inputs(input_data)
    layer = layer_cls(**init_kwargs)
    symbolic_outputs = _call(layer, symbolic_inputs, call_kwargs)
    _check_shapes(
        layer_cls, symbolic_outputs, expected_output_shape, "symbolic"
    )

    eager_layer = layer_cls(**init_kwargs)
    eager_inputs = _map(keras.ops.convert_to_tensor, input_data)
    eager_outputs = _call(eager_layer, eager_inputs, call_kwargs)
    _check_shapes(layer_cls, eager_outputs, expected_output_shape, "eager")
    _check_counts(
        layer_cls,
        eager_layer,
        expected_num_trainable_weights,
        expected_num_non_trainable_weights,
        expected_num_losses,
    )

    model = keras.Model(symbolic_inputs, symbolic_outputs)
    if run_saving_check:
        loaded = run_model_saving_test(model, input_data, atol, rtol)
        loaded_layers = [lyr for lyr in loaded.layers if type(lyr) is layer_cls]
        if not loaded_layers:
            _fail(layer_cls, "the loaded model has no layer of this class.")
        if _to_json(loaded_layers[0].get_config()) != _to_json(
            layer.get_config()
        ):
            _fail(layer_cls, "save/load changed the layer's config.")

    if run_training_check:
        targets = [
            np.zeros_like(a) for a in _numpy(model(input_data, training=False))
        ]
        fit_losses = [
            "mse" if np.issubdtype(t.dtype, np.floating) else None
            for t in targets
        ]
        if all(loss is None for loss in fit_losses) and not model.losses:
            _fail(layer_cls, "nothing to train: no float output, no loss.")
        model.compile(optimizer="sgd", loss=fit_losses)
        n = len(_flat(input_data)[0])
        history = model.fit(
            input_data,
            targets,
            batch_size=n,
            epochs=1,
            verbose=0,
            shuffle=False,
        )
        loss = history.history["loss"][-1]
        if not np.isfinite(loss):
            _fail(layer_cls, f"one fit step gave a non-finite loss {loss}.")
    return eager_layer
