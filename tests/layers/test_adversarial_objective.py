import keras
import numpy as np
import pytest

from keras_cool.layers import AdversarialObjective
from keras_cool.losses.gan import OBJECTIVES
from keras_cool.testing import run_model_saving_test

CASES = [(name, 3) for name in sorted(OBJECTIVES)] + [
    (name, 2) for name in sorted(OBJECTIVES) if OBJECTIVES[name].reversal_exact
]
LAMBDA = 0.7


def networks(batch_norm=False):
    z = keras.Input((3,))
    h = keras.layers.Dense(6, activation="tanh")(z)
    generator = keras.Model(z, keras.layers.Dense(2)(h), name="generator")
    x = keras.Input((2,))
    h = keras.layers.Dense(8)(x)
    if batch_norm:
        h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("tanh")(h)
    discriminator = keras.Model(x, keras.layers.Dense(1)(h), name="disc")
    return generator, discriminator


def data(n=8):
    rng = np.random.default_rng(1)
    real = rng.normal(size=(n, 2)).astype("float32")
    noise = rng.normal(size=(n, 3)).astype("float32")
    return real, noise


@pytest.mark.parametrize("separate", [False, True])
@pytest.mark.parametrize("loss,passes", CASES)
def test_gradients_are_routed_exactly(loss, passes, separate, backend_grad):
    """∂L/∂θ_D = ∂L_D/∂θ_D and ∂L/∂θ_G = λ ∂L_G/∂θ_G, the backend's autodiff
    as reference (tf.GradientTape, jax.grad, torch.autograd), with real and
    generated samples in one discriminator call or in separate ones."""
    generator, discriminator = networks()
    objective = AdversarialObjective(
        discriminator, loss, LAMBDA, passes=passes, separate_batches=separate
    )
    d_loss, g_loss, _ = OBJECTIVES[loss]
    real, noise = data()
    d_vars = discriminator.trainable_variables
    g_vars = generator.trainable_variables

    def single():
        return objective.compute_objective(real, generator(noise))[0]

    def reference(fn):
        return fn(discriminator(real), discriminator(generator(noise)))

    grads = backend_grad(single, d_vars + g_vars)
    single_d, single_g = grads[: len(d_vars)], grads[len(d_vars) :]
    ref_d = backend_grad(lambda: reference(d_loss), d_vars)
    ref_g = backend_grad(lambda: reference(g_loss), g_vars)
    for got, want in zip(single_d, ref_d):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(single_g, ref_g):
        np.testing.assert_allclose(got, LAMBDA * want, rtol=1e-5, atol=1e-6)
    assert max(np.abs(g).max() for g in ref_d) > 1e-3  # not vacuous
    assert max(np.abs(g).max() for g in ref_g) > 1e-3
    # The value: L_D (2 passes) or L_D + L_G (3 passes).
    value = keras.ops.convert_to_numpy(single())
    expected = keras.ops.convert_to_numpy(reference(d_loss))
    if passes == 3:
        expected = expected + keras.ops.convert_to_numpy(reference(g_loss))
    np.testing.assert_allclose(value, expected, rtol=1e-5)


@pytest.mark.parametrize("loss,passes", [("modified", 3), ("minimax", 2)])
def test_zero_generator_weight_freezes_the_generator(
    loss, passes, backend_grad
):
    generator, discriminator = networks()
    objective = AdversarialObjective(discriminator, loss, 0.0, passes=passes)
    real, noise = data()
    grads = backend_grad(
        lambda: objective.compute_objective(real, generator(noise))[0],
        generator.trainable_variables,
    )
    assert all(np.all(g == 0) for g in grads)


def test_batch_norm_discriminator_in_training_mode(backend_grad):
    """Each pass normalises its own batch, so the fake passes still agree."""
    generator, discriminator = networks(batch_norm=True)
    objective = AdversarialObjective(discriminator, "rsgan", LAMBDA)
    assert objective._separate()  # auto: BatchNormalization found
    d_loss, g_loss, _ = OBJECTIVES["rsgan"]
    real, noise = data()
    d_vars = discriminator.trainable_variables
    g_vars = generator.trainable_variables

    def reference(fn):
        fake = discriminator(generator(noise), training=True)
        return fn(discriminator(real, training=True), fake)

    single = backend_grad(
        lambda: objective.compute_objective(
            real, generator(noise), training=True
        )[0],
        d_vars + g_vars,
    )
    want = backend_grad(lambda: reference(d_loss), d_vars)
    want += [
        LAMBDA * g for g in backend_grad(lambda: reference(g_loss), g_vars)
    ]
    for got, expected in zip(single, want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def single_loss_model(loss="modified", passes=None):
    generator, discriminator = networks()
    real_in, noise_in = keras.Input((2,)), keras.Input((3,))
    objective = AdversarialObjective(discriminator, loss, 0.5, passes=passes)
    outputs = objective([real_in, generator(noise_in)])
    return keras.Model([real_in, noise_in], outputs), generator, discriminator


@pytest.mark.parametrize("loss", ["modified", "wasserstein"])
def test_one_compile_one_fit_trains_both(loss):
    model, generator, discriminator = single_loss_model(loss)
    assert model.get_layer(index=-1).passes == (
        2 if loss == "wasserstein" else 3
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    g_before = [np.array(v) for v in generator.weights]
    d_before = [np.array(v) for v in discriminator.weights]
    real, noise = data(32)
    history = model.fit([real, noise], batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert any(
        not np.allclose(a, np.array(b))
        for a, b in zip(g_before, generator.weights)
    )
    assert any(
        not np.allclose(a, np.array(b))
        for a, b in zip(d_before, discriminator.weights)
    )


def test_real_and_generated_share_one_call_unless_batch_norm():
    for batch_norm, expected in ((False, False), (True, True)):
        _, discriminator = networks(batch_norm)
        layer = AdversarialObjective(discriminator, "modified")
        assert layer.separate_batches is None
        assert layer._separate() is expected
    calls = []
    _, discriminator = networks()
    discriminator.call = (
        lambda call: lambda *a, **k: calls.append(a) or call(*a, **k)
    )(discriminator.call)
    real, noise = data()
    fake = np.zeros_like(real)
    AdversarialObjective(discriminator, "minimax").compute_objective(real, fake)
    assert [tuple(a[0].shape) for a in calls] == [(16, 2)]
    calls.clear()
    layer = AdversarialObjective(
        discriminator, "minimax", separate_batches=True
    )
    layer.compute_objective(real, fake)
    assert [tuple(a[0].shape) for a in calls] == [(8, 2), (8, 2)]


def test_keras_round_trip():
    model, _, _ = single_loss_model("rasgan")
    loaded = run_model_saving_test(model, list(data()))
    layer = [
        la for la in loaded.layers if isinstance(la, AdversarialObjective)
    ][0]
    assert (layer.loss, layer.passes, layer.generator_weight) == (
        "rasgan",
        3,
        0.5,
    )
    assert layer.generator_switch.mode == "scale"
    assert layer.separate_batches is None
    model.get_layer(index=-1).separate_batches = True
    loaded = run_model_saving_test(model, list(data()))
    assert loaded.get_layer(index=-1).separate_batches is True


def test_bad_arguments_are_explained():
    _, discriminator = networks()
    with pytest.raises(ValueError, match="needs passes=3"):
        AdversarialObjective(discriminator, "modified", passes=2)
    with pytest.raises(ValueError, match="Unknown GAN loss"):
        AdversarialObjective(discriminator, "vanilla")
    with pytest.raises(ValueError, match=">= 0"):
        AdversarialObjective(discriminator, "hinge", generator_weight=-1.0)
    with pytest.raises(ValueError, match="passes must be"):
        AdversarialObjective(discriminator, "hinge", passes=1)
    with pytest.raises(ValueError, match="separate_batches must be"):
        AdversarialObjective(discriminator, "hinge", separate_batches="yes")
    layer = AdversarialObjective(discriminator, "non_saturating")
    assert layer.passes == 3
    with pytest.raises(ValueError, match="real_samples, generated_samples"):
        layer(np.zeros((2, 2), "float32"))


def test_losses_lists_every_accepted_name():
    assert AdversarialObjective.LOSSES == tuple(sorted(OBJECTIVES))
    discriminator = networks()[1]
    for loss in AdversarialObjective.LOSSES:
        assert AdversarialObjective(discriminator, loss=loss).loss == loss
    with pytest.raises(ValueError, match="Unknown GAN loss"):
        AdversarialObjective(discriminator, loss="not_a_loss")


# Several discriminator inputs and a trainable real side (ALI / BiGAN).
BIDIRECTIONAL = [
    ("ali_minimax", 2),
    ("ali_minimax", 3),
    ("ali_non_saturating", 3),
    ("ali_su", 3),
    ("rsgan", 3),
]


def pair_networks():
    """Generator z(3) -> x(2), encoder x -> z, and D(x, z) -> logit."""
    generator, _ = networks()
    x = keras.Input((2,))
    h = keras.layers.Dense(5, activation="tanh")(x)
    encoder = keras.Model(x, keras.layers.Dense(3)(h), name="encoder")
    x_in, z_in = keras.Input((2,)), keras.Input((3,))
    h = keras.layers.Concatenate()([x_in, z_in])
    h = keras.layers.Dense(8, activation="tanh")(h)
    discriminator = keras.Model(
        [x_in, z_in], keras.layers.Dense(1)(h), name="pair_disc"
    )
    return generator, encoder, discriminator


@pytest.mark.parametrize("separate", [False, True])
@pytest.mark.parametrize("loss,passes", BIDIRECTIONAL)
def test_two_input_discriminator_with_trainable_real_side(
    loss, passes, separate, backend_grad
):
    """D(x, z) on (x, E(x)) and (G(z), z): ∂L/∂θ_D = ∂L_D/∂θ_D, and the
    encoder and generator get λ·∂L_G, against the backend's autodiff."""
    generator, encoder, discriminator = pair_networks()
    objective = AdversarialObjective(
        discriminator,
        loss,
        LAMBDA,
        passes=passes,
        separate_batches=separate,
        trainable_real=True,
    )
    assert objective.passes == passes
    d_loss, g_loss = OBJECTIVES[loss][:2]
    real, noise = data()
    d_vars = discriminator.trainable_variables
    e_vars = encoder.trainable_variables
    g_vars = generator.trainable_variables

    def pairs():
        x, z = (
            keras.ops.convert_to_tensor(real),
            keras.ops.convert_to_tensor(noise),
        )
        return [x, encoder(x)], [generator(z), z]

    def single():
        return objective.compute_objective(*pairs())[0]

    def reference(fn):
        real_pair, gen_pair = pairs()
        return fn(discriminator(real_pair), discriminator(gen_pair))

    grads = backend_grad(single, d_vars + e_vars + g_vars)
    ref_d = backend_grad(lambda: reference(d_loss), d_vars)
    ref_eg = backend_grad(lambda: reference(g_loss), e_vars + g_vars)
    for got, want in zip(grads[: len(d_vars)], ref_d):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads[len(d_vars) :], ref_eg):
        np.testing.assert_allclose(got, LAMBDA * want, rtol=1e-5, atol=1e-6)
    assert max(np.abs(g).max() for g in ref_d) > 1e-3  # not vacuous
    assert max(np.abs(g).max() for g in ref_eg[: len(e_vars)]) > 1e-3
    assert max(np.abs(g).max() for g in ref_eg[len(e_vars) :]) > 1e-3
    value = keras.ops.convert_to_numpy(single())
    expected = keras.ops.convert_to_numpy(reference(d_loss))
    if passes == 3:
        expected = expected + keras.ops.convert_to_numpy(reference(g_loss))
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss,passes", [("modified", 3), ("minimax", 2)])
def test_two_input_discriminator_with_data_real_side(
    loss, passes, backend_grad
):
    """A conditional-style D(x, z) with real pairs as data: only the
    generated pair carries gradient, and it is still exact."""
    generator, _, discriminator = pair_networks()
    objective = AdversarialObjective(discriminator, loss, LAMBDA, passes)
    d_loss, g_loss = OBJECTIVES[loss][:2]
    real, noise = [keras.ops.convert_to_tensor(a) for a in data()]
    codes = keras.ops.flip(noise, 0)
    d_vars = discriminator.trainable_variables
    g_vars = generator.trainable_variables

    def single():
        return objective.compute_objective(
            [real, codes], [generator(noise), noise]
        )[0]

    def reference(fn):
        return fn(
            discriminator([real, codes]),
            discriminator([generator(noise), noise]),
        )

    grads = backend_grad(single, d_vars + g_vars)
    want = backend_grad(lambda: reference(d_loss), d_vars)
    want += [
        LAMBDA * g for g in backend_grad(lambda: reference(g_loss), g_vars)
    ]
    for got, expected in zip(grads, want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert max(np.abs(g).max() for g in want[len(d_vars) :]) > 1e-3


def test_adversarial_autoencoder_gradients(backend_grad):
    """AAE: D on the latent ([prior z, E(x)]) plus a reconstruction loss.
    D gets ∂L_D, the decoder ∂L_rec, the encoder ∂L_rec + λ ∂L_G."""
    decoder, _ = networks()  # z(3) -> x(2)
    _, encoder, _ = pair_networks()  # x(2) -> z(3)
    z = keras.Input((3,))
    h = keras.layers.Dense(6, activation="tanh")(z)
    latent_d = keras.Model(z, keras.layers.Dense(1)(h), name="latent_d")
    objective = AdversarialObjective(latent_d, "modified", LAMBDA)
    d_loss, g_loss = OBJECTIVES["modified"][:2]
    x, prior = [keras.ops.convert_to_tensor(a) for a in data()]
    d_vars = latent_d.trainable_variables
    e_vars = encoder.trainable_variables
    g_vars = decoder.trainable_variables

    def reconstruction():
        return keras.ops.mean(keras.ops.square(decoder(encoder(x)) - x))

    def single():
        adversarial = objective.compute_objective(prior, encoder(x))[0]
        return adversarial + reconstruction()

    grads = backend_grad(single, d_vars + e_vars + g_vars)
    want = backend_grad(
        lambda: d_loss(latent_d(prior), latent_d(encoder(x))), d_vars
    )
    adv_e = backend_grad(
        lambda: g_loss(latent_d(prior), latent_d(encoder(x))), e_vars
    )
    rec = backend_grad(reconstruction, e_vars + g_vars)
    want += [r + LAMBDA * a for r, a in zip(rec, adv_e)]
    want += rec[len(e_vars) :]
    for got, expected in zip(grads, want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert max(np.abs(g).max() for g in adv_e) > 1e-3


def test_ali_model_trains_and_round_trips():
    generator, encoder, discriminator = pair_networks()
    x_in, z_in = keras.Input((2,)), keras.Input((3,))
    objective = AdversarialObjective(
        discriminator, "ali_su", 0.5, trainable_real=True
    )
    outputs = objective([[x_in, encoder(x_in)], [generator(z_in), z_in]])
    model = keras.Model([x_in, z_in], outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [np.array(v) for v in model.trainable_variables]
    real, noise = data(32)
    history = model.fit([real, noise], batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    for net in (generator, encoder, discriminator):
        ids = {id(v) for v in net.trainable_variables}
        moved = [
            not np.allclose(b, np.array(v))
            for b, v in zip(before, model.trainable_variables)
            if id(v) in ids
        ]
        assert any(moved), net.name
    loaded = run_model_saving_test(model, [real, noise])
    layer = loaded.get_layer(index=-1)
    assert (layer.loss, layer.trainable_real, layer.passes) == (
        "ali_su",
        True,
        3,
    )


def test_trainable_real_arguments_are_checked():
    _, _, discriminator = pair_networks()
    with pytest.raises(ValueError, match="trainable_real=True needs passes"):
        AdversarialObjective(
            discriminator, "minimax", passes=2, trainable_real=True
        )
    with pytest.raises(ValueError, match="trainable_real must be"):
        AdversarialObjective(discriminator, "ali_su", trainable_real="yes")
    assert AdversarialObjective(discriminator, "ali_minimax").passes == 2
    layer = AdversarialObjective(discriminator, "minimax", trainable_real=True)
    assert layer.passes == 3
    real, noise = data()
    with pytest.raises(ValueError):
        layer.compute_objective([real, noise], np.zeros((8, 2), "float32"))


def test_gradient_penalty_estimates_r1_and_reaches_only_d(backend_grad):
    """γ/2·E‖∇_x D(x)‖² by finite differences: on many random directions it
    matches the autodiff value; G's gradient is unchanged by it."""
    generator, discriminator = networks()
    gamma = 2.0
    layer = AdversarialObjective(
        discriminator, "modified", LAMBDA, gradient_penalty=gamma, seed=3
    )
    real, noise = data()
    point = keras.Variable(real)
    input_grads = backend_grad(
        lambda: keras.ops.sum(discriminator(point.value)), [point]
    )[0]
    exact = 0.5 * gamma * np.mean(np.sum(input_grads**2, axis=1))
    many = np.tile(real, (4000, 1))
    estimate = keras.ops.convert_to_numpy(layer.penalty(many))
    np.testing.assert_allclose(estimate, exact, rtol=0.05)
    assert exact > 1e-3
    plain = AdversarialObjective(discriminator, "modified", LAMBDA)
    g_vars = generator.trainable_variables
    with_penalty = backend_grad(
        lambda: layer.compute_objective(real, generator(noise))[0], g_vars
    )
    without = backend_grad(
        lambda: plain.compute_objective(real, generator(noise))[0], g_vars
    )
    for a, b in zip(with_penalty, without):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    d_vars = discriminator.trainable_variables
    d_with = backend_grad(
        lambda: layer.compute_objective(real, generator(noise))[0], d_vars
    )
    d_without = backend_grad(
        lambda: plain.compute_objective(real, generator(noise))[0], d_vars
    )
    assert any(not np.allclose(a, b) for a, b in zip(d_with, d_without))
    with pytest.raises(ValueError, match="`gradient_penalty` must be"):
        AdversarialObjective(discriminator, gradient_penalty=-1.0)
    with pytest.raises(ValueError, match="`penalty_step` must be > 0"):
        AdversarialObjective(discriminator, penalty_step=0.0)


def test_three_pass_fits_from_one_seed_are_identical():
    # The frozen pass reads D's weights for G's gradient only. On
    # TensorFlow that read was not ordered before the step's update of D:
    # 40 short fits gave 2 to 6 different loss histories, and two fits of
    # 400 steps differed almost surely.
    real, noise = data(3200)

    def fit():
        keras.utils.set_random_seed(0)
        generator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        discriminator = keras.Sequential(
            [keras.Input((2,)), keras.layers.Dense(1)]
        )
        real_in, noise_in = keras.Input((2,)), keras.Input((3,))
        objective = AdversarialObjective(discriminator, loss="modified")
        model = keras.Model(
            [real_in, noise_in], objective([real_in, generator(noise_in)])
        )
        assert objective.passes == 3
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        history = model.fit([real, noise], batch_size=8, verbose=0)
        return history.history["loss"], model.get_weights()

    (loss_a, weights_a), (loss_b, weights_b) = fit(), fit()
    assert loss_a == loss_b
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
