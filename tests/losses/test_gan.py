import keras
import numpy as np
import pytest

from keras_cool import losses
from keras_cool.losses.gan import ALIASES
from keras_cool.losses.gan import OBJECTIVES

RNG = np.random.default_rng(0)
REAL = RNG.normal(size=(16, 1)).astype("float32") * 2
GEN = RNG.normal(size=(16, 1)).astype("float32") * 2


def softplus(x):
    return np.logaddexp(0.0, x)


def bce(logits, target):
    return np.mean(target * softplus(-logits) + (1 - target) * softplus(logits))


def value(fn, *args, **kwargs):
    return float(keras.ops.convert_to_numpy(fn(*args, **kwargs)))


# (function, numpy reference) on the fixed logits above.
REFERENCES = {
    "minimax_discriminator_loss": (
        lambda r, g: losses.minimax_discriminator_loss(r, g),
        bce(REAL, 0.875) + bce(GEN, 0.0),  # TF-GAN: 0.25 smoothing
    ),
    "minimax_generator_loss": (
        lambda r, g: losses.minimax_generator_loss(g),
        np.mean(np.log(1 - 1 / (1 + np.exp(-GEN.astype("float64"))))),
    ),
    "modified_discriminator_loss": (
        lambda r, g: losses.modified_discriminator_loss(r, g, 0.0),
        np.mean(-np.log(1 / (1 + np.exp(-REAL.astype("float64")))))
        + np.mean(-np.log(1 - 1 / (1 + np.exp(-GEN.astype("float64"))))),
    ),
    "modified_generator_loss": (
        lambda r, g: losses.modified_generator_loss(g),
        np.mean(-np.log(1 / (1 + np.exp(-GEN.astype("float64"))))),
    ),
    "wasserstein_discriminator_loss": (
        losses.wasserstein_discriminator_loss,
        GEN.mean() - REAL.mean(),
    ),
    "wasserstein_generator_loss": (
        lambda r, g: losses.wasserstein_generator_loss(g),
        -GEN.mean(),
    ),
    "wasserstein_hinge_discriminator_loss": (
        losses.wasserstein_hinge_discriminator_loss,
        np.maximum(0, 1 - REAL).mean() + np.maximum(0, 1 + GEN).mean(),
    ),
    "wasserstein_hinge_generator_loss": (
        lambda r, g: losses.wasserstein_hinge_generator_loss(g),
        -GEN.mean(),
    ),
    "least_squares_discriminator_loss": (
        losses.least_squares_discriminator_loss,
        0.5 * np.mean((REAL - 1) ** 2) + 0.5 * np.mean(GEN**2),
    ),
    "least_squares_generator_loss": (
        lambda r, g: losses.least_squares_generator_loss(g),
        0.5 * np.mean((GEN - 1) ** 2),
    ),
    "relativistic_standard_discriminator_loss": (
        losses.relativistic_standard_discriminator_loss,
        np.mean(softplus(-(REAL - GEN))),
    ),
    "relativistic_standard_generator_loss": (
        losses.relativistic_standard_generator_loss,
        np.mean(softplus(-(GEN - REAL))),
    ),
    "relativistic_discriminator_loss": (
        losses.relativistic_discriminator_loss,
        bce(REAL - GEN.mean(), 1.0) + bce(GEN - REAL.mean(), 0.0),
    ),
    "relativistic_generator_loss": (
        losses.relativistic_generator_loss,
        bce(REAL - GEN.mean(), 0.0) + bce(GEN - REAL.mean(), 1.0),
    ),
    "relativistic_average_discriminator_loss": (
        losses.relativistic_average_discriminator_loss,
        bce(REAL - GEN.mean(), 1.0) + bce(GEN - REAL.mean(), 0.0),
    ),
    "relativistic_average_generator_loss": (
        losses.relativistic_average_generator_loss,
        bce(REAL - GEN.mean(), 0.0) + bce(GEN - REAL.mean(), 1.0),
    ),
    "relativistic_average_least_squares_discriminator_loss": (
        losses.relativistic_average_least_squares_discriminator_loss,
        np.mean((REAL - GEN.mean() - 1) ** 2)
        + np.mean((GEN - REAL.mean() + 1) ** 2),
    ),
    "relativistic_average_least_squares_generator_loss": (
        losses.relativistic_average_least_squares_generator_loss,
        np.mean((GEN - REAL.mean() - 1) ** 2)
        + np.mean((REAL - GEN.mean() + 1) ** 2),
    ),
}


def test_every_public_loss_has_a_reference():
    assert sorted(REFERENCES) == sorted(losses.__all__)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_numpy_reference(name):
    fn, expected = REFERENCES[name]
    got = fn(REAL, GEN)
    assert tuple(keras.ops.shape(got)) == ()
    np.testing.assert_allclose(float(got), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(n for n in REFERENCES if "_disc" in n))
def test_discriminator_losses_reward_telling_real_from_fake(name):
    """Every D loss falls when D scores real higher and fake lower.

    This is the check that catches the sign bug of the first RaGAN code
    (second term `mean C(x_f) - C(x_r)`).
    """
    fn = REFERENCES[name][0]
    before = value(fn, REAL, GEN)
    after = value(fn, REAL + 0.1, GEN - 0.1)
    assert after < before


def test_published_ragan_sign_bug_would_be_caught():
    def buggy(real, gen):  # AlexiaJM/RelativisticGAN#2, before the fix
        real = keras.ops.convert_to_tensor(real)
        gen = keras.ops.convert_to_tensor(gen)
        first = keras.ops.softplus(-(real - keras.ops.mean(gen)))
        second = keras.ops.softplus(keras.ops.mean(gen) - real)
        return keras.ops.mean(first) + keras.ops.mean(second)

    good = losses.relativistic_average_discriminator_loss
    assert not np.isclose(value(buggy, REAL, GEN), value(good, REAL, GEN))
    # With the bug, D does not see individual fakes, only their mean:
    # moving two fake scores apart (same mean) leaves the loss unchanged.
    spread = GEN.copy()
    spread[0] += 3.0
    spread[1] -= 3.0
    assert value(buggy, REAL, spread) == pytest.approx(
        value(buggy, REAL, GEN), rel=1e-5
    )
    assert value(good, REAL, spread) != pytest.approx(
        value(good, REAL, GEN), rel=1e-3
    )


@pytest.mark.parametrize("name", sorted(n for n in REFERENCES if "_gen" in n))
def test_generator_losses_reward_fooling_the_discriminator(name):
    fn = REFERENCES[name][0]
    assert value(fn, REAL, GEN + 0.1) < value(fn, REAL, GEN)


def test_patch_outputs_and_large_logits_stay_finite():
    real = np.full((2, 4, 4, 1), 80.0, "float32")
    gen = np.full((2, 4, 4, 1), -80.0, "float32")
    for name in sorted(REFERENCES):
        result = value(REFERENCES[name][0], real, gen)
        assert np.isfinite(result), name


# TF-GAN's RelativisticAverageLoss test (tensorflow_gan/python/losses/
# losses_impl_test.py): its inputs and expected values.
TFGAN_REAL = np.array([-2.0, 0.4, 12.5, 2.7], "float32")
TFGAN_GEN = np.array([10.0, 4.4, -5.5, 3.6], "float32")
TFGAN_D_LOSS = 4.390114
TFGAN_G_LOSS = 4.9401135


@pytest.mark.parametrize("shape", [(4,), (2, 2), (4, 1)])
def test_relativistic_losses_give_tfgan_values(shape):
    """The functions with TF-GAN's names compute TF-GAN's loss (RaSGAN):
    same argument order, same reduction, TF-GAN's test values to 1e-5."""
    real, gen = TFGAN_REAL.reshape(shape), TFGAN_GEN.reshape(shape)
    d_loss = value(losses.relativistic_discriminator_loss, real, gen)
    g_loss = value(losses.relativistic_generator_loss, real, gen)
    assert abs(d_loss - TFGAN_D_LOSS) < 1e-5
    assert abs(g_loss - TFGAN_G_LOSS) < 1e-5


def test_relativistic_average_is_the_tfgan_named_loss():
    for d_or_g in ("discriminator", "generator"):
        average = getattr(losses, f"relativistic_average_{d_or_g}_loss")
        tfgan = getattr(losses, f"relativistic_{d_or_g}_loss")
        assert value(average, REAL, GEN) == value(tfgan, REAL, GEN)
        assert value(average, TFGAN_REAL, TFGAN_GEN) == pytest.approx(
            TFGAN_D_LOSS if d_or_g == "discriminator" else TFGAN_G_LOSS,
            abs=1e-5,
        )


def test_relativistic_standard_is_rsgan():
    """RSGAN compares each real logit with the generated one at the same
    position: -log σ(C(x_r) - C(x_f)) and -log σ(C(x_f) - C(x_r))."""
    diff = TFGAN_REAL.astype("float64") - TFGAN_GEN
    d_loss = np.mean(-np.log(1 / (1 + np.exp(-diff))))
    g_loss = np.mean(-np.log(1 / (1 + np.exp(diff))))
    assert value(
        losses.relativistic_standard_discriminator_loss, TFGAN_REAL, TFGAN_GEN
    ) == pytest.approx(d_loss, abs=1e-5)
    assert value(
        losses.relativistic_standard_generator_loss, TFGAN_REAL, TFGAN_GEN
    ) == pytest.approx(g_loss, abs=1e-5)
    # Not the average loss: on TF-GAN's inputs, 4.3148 and 4.5898.
    assert abs(d_loss - TFGAN_D_LOSS) > 0.05
    assert abs(g_loss - TFGAN_G_LOSS) > 0.3


def test_relativistic_standard_pairs_need_equal_shapes():
    with pytest.raises(ValueError, match="same shape"):
        losses.relativistic_standard_discriminator_loss(REAL, GEN[:8])


def test_relativistic_average_batches_may_differ_in_size():
    """As in TF-GAN: only the batch means of the other side enter."""
    got = value(losses.relativistic_discriminator_loss, REAL, GEN[:8])
    expected = bce(REAL - GEN[:8].mean(), 1.0) + bce(GEN[:8] - REAL.mean(), 0)
    assert got == pytest.approx(expected, rel=1e-5)


def test_two_pass_objectives_are_minus_the_fake_term():
    """Where OBJECTIVES says two passes are exact, L_G = -(L_D fake part)."""
    zeros = np.zeros_like(REAL)
    for name, (d_loss, g_loss, two_pass) in OBJECTIVES.items():
        fake_term = value(d_loss, zeros, GEN) - value(d_loss, zeros, zeros)
        g_shift = value(g_loss, zeros, GEN) - value(g_loss, zeros, zeros)
        assert np.isclose(g_shift, -fake_term, atol=1e-5) == two_pass, name
    assert set(ALIASES.values()) <= set(OBJECTIVES)


def test_objectives_use_the_losses_their_names_say():
    """`rsgan` is RSGAN, `rasgan` (alias `relativistic`, TF-GAN's name) the
    TF-GAN-named RaSGAN functions."""
    assert OBJECTIVES["rsgan"].d_loss is (
        losses.relativistic_standard_discriminator_loss
    )
    assert OBJECTIVES["rsgan"].g_loss is (
        losses.relativistic_standard_generator_loss
    )
    assert OBJECTIVES["rasgan"].d_loss is losses.relativistic_discriminator_loss
    assert OBJECTIVES["rasgan"].g_loss is losses.relativistic_generator_loss
    assert ALIASES["relativistic"] == "rasgan"
    assert ALIASES["relativistic_average"] == "rasgan"
    assert ALIASES["relativistic_standard"] == "rsgan"


def test_objectives_are_read_by_name():
    for name, objective in OBJECTIVES.items():
        assert objective.d_loss is objective[0], name
        assert objective.g_loss is objective[1], name
        assert isinstance(objective.reversal_exact, bool), name
    exact = {n for n, o in OBJECTIVES.items() if o.reversal_exact}
    assert exact == {"minimax", "wasserstein", "ali_minimax"}


def test_losses_reexports_every_gan_loss():
    from keras_cool.losses import gan

    assert losses.__all__ is gan.__all__
    for name in gan.__all__:
        assert getattr(losses, name) is getattr(gan, name), name
