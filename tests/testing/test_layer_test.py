"""The layer-test helper passes good layers and reports each broken one."""

import keras
import numpy as np
import pytest

from keras_cool.testing import run_layer_test
from keras_cool.testing import run_model_saving_test
from keras_cool.testing import run_serialization_test

PACKAGE = "keras_cool_tests"


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledDense(keras.layers.Layer):
    """A correct layer: a dense map times a fixed scale, with an L2 loss."""

    def __init__(self, units, scale=1.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.scale = scale
        self.l2 = l2

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="glorot_uniform"
        )
        self.calls = self.add_weight(
            shape=(), initializer="zeros", trainable=False
        )

    def call(self, inputs):
        if self.l2:
            self.add_loss(self.l2 * keras.ops.sum(self.kernel**2))
        return self.scale * keras.ops.matmul(inputs, self.kernel)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, scale=self.scale, l2=self.l2)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class DropsAnArgument(ScaledDense):
    """Broken: get_config forgets `scale`."""

    def get_config(self):
        config = super().get_config()
        del config["scale"]
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChangesAnArgument(ScaledDense):
    """Broken: get_config reports a value that was not given."""

    def get_config(self):
        config = super().get_config()
        config["units"] = config["units"] + 1
        return config


class Unregistered(ScaledDense):
    """Broken: not registered, so safe-mode loading cannot find it."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class TwoLosses(ScaledDense):
    """Adds two losses per call (a test may expect one)."""

    def call(self, inputs):
        self.add_loss(keras.ops.mean(inputs))
        self.add_loss(keras.ops.mean(inputs**2))
        return super().call(inputs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class NonScalarLoss(ScaledDense):
    """Broken: adds a per-sample loss instead of reducing it."""

    def call(self, inputs):
        self.add_loss(keras.ops.sum(inputs**2, axis=-1))
        return super().call(inputs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class UntrackedState(keras.layers.Layer):
    """Broken: a random numpy constant that is not a weight, so a reloaded
    model computes something else."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.offset = np.random.normal(size=(4,)).astype("float32")

    def call(self, inputs):
        return inputs + self.offset


@keras.saving.register_keras_serializable(package=PACKAGE)
class PairSum(keras.layers.Layer):
    """A correct two-input layer (list input)."""

    def call(self, inputs):
        a, b = inputs
        return a + b


GOOD = dict(
    init_kwargs={"units": 3, "scale": 2.0, "l2": 0.1},
    input_shape=(5, 4),
    expected_output_shape=(5, 3),
    expected_num_trainable_weights=1,
    expected_num_non_trainable_weights=1,
    expected_num_losses=1,
)


def test_good_layer_passes():
    layer = run_layer_test(ScaledDense, **GOOD)
    assert isinstance(layer, ScaledDense)


def test_keras_dense_passes():
    run_layer_test(
        keras.layers.Dense,
        init_kwargs={"units": 3, "activation": "relu"},
        input_shape=(2, 4),
        expected_output_shape=(2, 3),
        expected_num_trainable_weights=2,
        expected_num_losses=0,
    )


def test_list_input_layer_passes():
    a = np.ones((3, 2), "float32")
    run_layer_test(
        PairSum,
        input_data=[a, 2 * a],
        expected_output_shape=(3, 2),
        expected_num_trainable_weights=0,
        run_training_check=False,
    )


def test_reports_get_config_dropping_an_argument():
    with pytest.raises(AssertionError, match=r"missing .*\['scale'\]"):
        run_layer_test(DropsAnArgument, **GOOD)


def test_reports_get_config_changing_an_argument():
    with pytest.raises(AssertionError, match=r"get_config\(\)\['units'\] is 4"):
        run_layer_test(ChangesAnArgument, **GOOD)


def test_reports_unregistered_class():
    with pytest.raises(AssertionError, match="not registered"):
        run_layer_test(Unregistered, **GOOD)


def test_reports_wrong_loss_count():
    with pytest.raises(AssertionError, match="expected 1 losses.*found 3"):
        run_layer_test(TwoLosses, **GOOD)


def test_reports_wrong_weight_count():
    kwargs = dict(GOOD, expected_num_trainable_weights=2)
    with pytest.raises(AssertionError, match="expected 2 trainable weights"):
        run_layer_test(ScaledDense, **kwargs)


def test_reports_wrong_output_shape():
    kwargs = dict(GOOD, expected_output_shape=(5, 7))
    with pytest.raises(AssertionError, match="output shape"):
        run_layer_test(ScaledDense, **kwargs)


def test_reports_non_scalar_loss():
    kwargs = dict(GOOD, expected_num_losses=None)
    with pytest.raises(AssertionError, match="Reduce the loss to a scalar"):
        run_layer_test(NonScalarLoss, **kwargs)


def test_reports_outputs_changed_by_save_and_load():
    with pytest.raises(AssertionError, match="after .keras save/load"):
        run_layer_test(
            UntrackedState,
            input_shape=(2, 4),
            run_training_check=False,
        )


def test_serialization_test_returns_revived_layer():
    layer = ScaledDense(units=2, scale=3.0, name="sd")
    revived = run_serialization_test(layer, {"units": 2, "scale": 3.0})
    assert revived.get_config() == layer.get_config()
    assert revived is not layer


def test_model_saving_test_compares_outputs():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, ScaledDense(3, scale=0.5)(inputs))
    x = np.ones((2, 4), "float32")
    loaded = run_model_saving_test(model, x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)),
        keras.ops.convert_to_numpy(model(x)),
        rtol=1e-6,
    )


def test_needs_exactly_one_input_source():
    with pytest.raises(ValueError, match="exactly one"):
        run_layer_test(ScaledDense, init_kwargs={"units": 1})
