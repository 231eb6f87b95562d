import keras
import numpy as np
import pytest

from keras_cool.layers import SnapshotPenalty
from keras_cool.testing import run_model_saving_test

WEIGHT = 2.5


def generator():
    z = keras.Input((3,))
    h = keras.layers.Dense(6, activation="tanh")(z)
    return keras.Model(z, keras.layers.Dense(2)(h), name="generator")


def noise(n=8):
    return np.random.default_rng(0).normal(size=(n, 3)).astype("float32")


def perturb(network, scale=0.1, seed=3):
    rng = np.random.default_rng(seed)
    for v in network.trainable_variables:
        v.assign(np.array(v) + scale * rng.normal(size=v.shape))


def test_value_and_gradient(backend_grad):
    """weight·mean((G(z) - G°(z))²) and its gradient 2·weight·(G - G°)·∂G,
    with G° the snapshot taken at build time (G perturbed since)."""
    net = generator()
    old_net = generator()
    layer = SnapshotPenalty(net, weight=WEIGHT)
    layer.build((None, 3))
    old_net.set_weights(net.get_weights())  # the snapshot's weights
    perturb(net)
    z = noise()
    old = keras.ops.convert_to_numpy(old_net(z))
    new = keras.ops.convert_to_numpy(net(z))
    value = keras.ops.convert_to_numpy(layer.penalty(net(z), z))
    np.testing.assert_allclose(
        value, WEIGHT * np.mean((new - old) ** 2), rtol=1e-5
    )
    assert value > 1e-4
    variables = net.trainable_variables
    got = backend_grad(lambda: layer.penalty(net(z), z), variables)
    old_t = keras.ops.convert_to_tensor(old)
    want = backend_grad(
        lambda: WEIGHT * keras.ops.mean(keras.ops.square(net(z) - old_t)),
        variables,
    )
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
    assert max(np.abs(w).max() for w in want) > 1e-4
    # Called in training mode, the same value is added as a loss; not
    # outside training.
    layer(z, training=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.losses[0]), value, rtol=1e-5
    )
    layer(z, training=False)
    assert len(layer.losses) == 0


@pytest.mark.parametrize("every", [1, 3])
def test_snapshot_is_refreshed_every_k_steps_during_fit(every):
    """After step t (0-based), the snapshot holds the weights from before
    the update of the last step t' <= t with (t' + 1) % k == 0."""
    net = generator()
    z_in = keras.Input((3,))
    layer = SnapshotPenalty(net, weight=WEIGHT, refresh_every=every)
    model = keras.Model(z_in, layer(z_in))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = [[np.array(v) for v in net.trainable_variables]]

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model  # on JAX, syncs the variables from the train state
            history.append([np.array(v) for v in net.trainable_variables])

    z = noise(56)
    target = np.ones((56, 2), "float32")
    model.fit(z, target, batch_size=8, verbose=0, callbacks=[Record()])
    steps = 7
    assert len(history) == steps + 1
    assert int(np.asarray(layer.step)) == steps
    last = max(t for t in range(steps) if (t + 1) % every == 0)
    for s, w in zip(layer.snapshot, history[last]):
        np.testing.assert_allclose(np.array(s), w, rtol=1e-6, atol=1e-7)
    # Not the final weights: the snapshot lags behind.
    assert not np.allclose(np.array(layer.snapshot[0]), history[-1][0])


def test_penalty_changes_training():
    """Same data and seed: the penalty changes the updates (it is not a
    zero-gradient term in one simultaneous step, as G° is older)."""
    finals = []
    for weight in (0.0, 50.0):
        keras.utils.set_random_seed(0)
        net = generator()
        z_in = keras.Input((3,))
        model = keras.Model(z_in, SnapshotPenalty(net, weight)(z_in))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(noise(32), np.ones((32, 2)), batch_size=8, verbose=0)
        finals.append(np.array(net.trainable_variables[0]))
    assert not np.allclose(finals[0], finals[1], atol=1e-6)


def test_keras_round_trip_keeps_the_snapshot():
    net = generator()
    z_in = keras.Input((3,))
    layer = SnapshotPenalty(net, weight=WEIGHT, refresh_every=4)
    model = keras.Model(z_in, layer(z_in))
    perturb(net)  # snapshot != weights, so both must be saved
    loaded = run_model_saving_test(model, noise())
    new = loaded.get_layer(index=-1)
    assert (new.weight, new.refresh_every) == (WEIGHT, 4)
    for a, b in zip(layer.snapshot, new.snapshot):
        np.testing.assert_allclose(np.array(a), np.array(b))
    assert not np.allclose(
        np.array(new.snapshot[0]), np.array(new.network.weights[0])
    )


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="weight must be"):
        SnapshotPenalty(generator(), weight=-1.0)
    with pytest.raises(ValueError, match="refresh_every must be"):
        SnapshotPenalty(generator(), refresh_every=0)
    with pytest.raises(ValueError, match="refresh_every must be"):
        SnapshotPenalty(generator(), refresh_every=2.0)
