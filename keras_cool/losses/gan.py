"""GAN losses in `keras.ops`, with TF-GAN's names and defaults.

Every function takes discriminator outputs (logits, any shape: 1-D, 2-D
or patch maps) and returns the scalar mean over all entries, which is
TF-GAN's `SUM_BY_NONZERO_WEIGHTS` reduction with unit weights. The same
code runs on TensorFlow, JAX and torch.

Sign convention: the discriminator is pushed to output large values on
real data (TF-GAN's convention; Su Jianlin's hinge post uses the opposite
sign).

Relativistic losses (Jolicoeur-Martineau, 2018): `relativistic_*` are
TF-GAN's functions of those names, the relativistic *average* loss
(RaSGAN); `relativistic_average_*` are the same functions under the
paper's name. The paired, non-average form (RSGAN) is
`relativistic_standard_*`, and `relativistic_average_least_squares_*` is
RaLSGAN; both follow the paper's equations (TF-GAN has neither). Note the
sign bug in the first public RaGAN code (AlexiaJM/RelativisticGAN#2): its
second term used `mean(C(x_f)) - C(x_r)`; here, as in TF-GAN, the fake
term is `C(x_f) - mean(C(x_r))`. The author's code also halves the Ra
losses; TF-GAN, the paper and this module do not.
"""

from typing import Callable
from typing import NamedTuple

import keras
from keras import ops

__all__ = [
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "modified_discriminator_loss",
    "modified_generator_loss",
    "relativistic_average_discriminator_loss",
    "relativistic_average_generator_loss",
    "relativistic_average_least_squares_discriminator_loss",
    "relativistic_average_least_squares_generator_loss",
    "relativistic_discriminator_loss",
    "relativistic_generator_loss",
    "relativistic_standard_discriminator_loss",
    "relativistic_standard_generator_loss",
    "wasserstein_discriminator_loss",
    "wasserstein_generator_loss",
    "wasserstein_hinge_discriminator_loss",
    "wasserstein_hinge_generator_loss",
]

_register = keras.saving.register_keras_serializable(package="keras_cool")


def _float(x):
    x = ops.convert_to_tensor(x)
    if not keras.backend.is_float_dtype(x.dtype):
        x = ops.cast(x, "float32")
    return x


def _pair(real, gen):
    real, gen = _float(real), _float(gen)
    if real.shape != gen.shape and None not in (*real.shape, *gen.shape):
        raise ValueError(
            "Real and generated discriminator outputs must have the same "
            f"shape, got {real.shape} and {gen.shape}: use equal batch sizes."
        )
    return real, gen


def _check_smoothing(label_smoothing):
    """A Python or numpy number must lie in [0, 1] (a tensor is not
    checked: it may be a scheduled variable)."""
    if isinstance(label_smoothing, bool) or not isinstance(
        label_smoothing, (int, float)
    ):
        if hasattr(label_smoothing, "shape"):
            return
        raise TypeError(
            "label_smoothing must be a float in [0, 1], got "
            f"{label_smoothing!r}."
        )
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(
            "label_smoothing must be in [0, 1] (the real target becomes "
            f"1 - label_smoothing / 2), got {label_smoothing!r}."
        )


def _bce(logits, target):
    """Mean sigmoid cross-entropy with a constant target, from logits."""
    loss = target * ops.softplus(-logits)
    return ops.mean(loss + (1.0 - target) * ops.softplus(logits))


@_register
def minimax_discriminator_loss(
    discriminator_real_outputs, discriminator_gen_outputs, label_smoothing=0.25
):
    """Original GAN discriminator loss, `-log σ(D(x)) - log(1 - σ(D(G(z))))`.

    Args:
        discriminator_real_outputs: logits on real data.
        discriminator_gen_outputs: logits on generated data.
        label_smoothing: smooths the real target to `1 - label_smoothing/2`
            (TF-GAN's rule and default, 0.25).

    Returns:
        Scalar mean loss.
    """
    real = _float(discriminator_real_outputs)
    gen = _float(discriminator_gen_outputs)
    _check_smoothing(label_smoothing)
    return _bce(real, 1.0 - 0.5 * label_smoothing) + _bce(gen, 0.0)


@_register
def minimax_generator_loss(discriminator_gen_outputs):
    """Original (saturating) generator loss, `log(1 - σ(D(G(z))))`.

    Equal to minus the generated-data term of
    `minimax_discriminator_loss`. TF-GAN's version also subtracts a constant
    (`softplus(-1)` without label smoothing), which changes no gradient.

    Args:
        discriminator_gen_outputs: logits on generated data.

    Returns:
        Scalar mean loss.
    """
    return -_bce(_float(discriminator_gen_outputs), 0.0)


@_register
def modified_discriminator_loss(
    discriminator_real_outputs, discriminator_gen_outputs, label_smoothing=0.25
):
    """Discriminator loss paired with the non-saturating generator loss.

    The same as `minimax_discriminator_loss` (as in TF-GAN).

    Args:
        discriminator_real_outputs: logits on real data.
        discriminator_gen_outputs: logits on generated data.
        label_smoothing: real target `1 - label_smoothing/2` (default 0.25).

    Returns:
        Scalar mean loss.
    """
    return minimax_discriminator_loss(
        discriminator_real_outputs, discriminator_gen_outputs, label_smoothing
    )


@_register
def modified_generator_loss(discriminator_gen_outputs, label_smoothing=0.0):
    """Non-saturating generator loss, `-log σ(D(G(z)))`.

    Args:
        discriminator_gen_outputs: logits on generated data.
        label_smoothing: target `1 - label_smoothing/2` (default 0).

    Returns:
        Scalar mean loss.
    """
    gen = _float(discriminator_gen_outputs)
    _check_smoothing(label_smoothing)
    return _bce(gen, 1.0 - 0.5 * label_smoothing)


@_register
def wasserstein_discriminator_loss(
    discriminator_real_outputs, discriminator_gen_outputs
):
    """Wasserstein critic loss, `mean(D(G(z))) - mean(D(x))`.

    Args:
        discriminator_real_outputs: critic outputs on real data.
        discriminator_gen_outputs: critic outputs on generated data.

    Returns:
        Scalar loss.
    """
    real = _float(discriminator_real_outputs)
    gen = _float(discriminator_gen_outputs)
    return ops.mean(gen) - ops.mean(real)


@_register
def wasserstein_generator_loss(discriminator_gen_outputs):
    """Wasserstein generator loss, `-mean(D(G(z)))`.

    Args:
        discriminator_gen_outputs: critic outputs on generated data.

    Returns:
        Scalar loss.
    """
    return -ops.mean(_float(discriminator_gen_outputs))


@_register
def wasserstein_hinge_discriminator_loss(
    discriminator_real_outputs,
    discriminator_gen_outputs,
    real_hinge=1.0,
    generated_hinge=1.0,
):
    """Hinge loss, `relu(1 - D(x)) + relu(1 + D(G(z)))` (SN-GAN, BigGAN).

    Args:
        discriminator_real_outputs: critic outputs on real data.
        discriminator_gen_outputs: critic outputs on generated data.
        real_hinge: margin for real data.
        generated_hinge: margin for generated data.

    Returns:
        Scalar mean loss.
    """
    real = _float(discriminator_real_outputs)
    gen = _float(discriminator_gen_outputs)
    return ops.mean(ops.relu(real_hinge - real)) + ops.mean(
        ops.relu(generated_hinge + gen)
    )


@_register
def wasserstein_hinge_generator_loss(discriminator_gen_outputs):
    """Generator loss of the hinge GAN, `-mean(D(G(z)))`.

    Args:
        discriminator_gen_outputs: critic outputs on generated data.

    Returns:
        Scalar loss.
    """
    return wasserstein_generator_loss(discriminator_gen_outputs)


@_register
def least_squares_discriminator_loss(
    discriminator_real_outputs,
    discriminator_gen_outputs,
    real_label=1.0,
    fake_label=0.0,
):
    """LSGAN loss, `(D(x) - real)² / 2 + (D(G(z)) - fake)² / 2`.

    Args:
        discriminator_real_outputs: outputs on real data.
        discriminator_gen_outputs: outputs on generated data.
        real_label: target for real data.
        fake_label: target for generated data.

    Returns:
        Scalar mean loss.
    """
    real = _float(discriminator_real_outputs)
    gen = _float(discriminator_gen_outputs)
    return 0.5 * ops.mean(ops.square(real - real_label)) + 0.5 * ops.mean(
        ops.square(gen - fake_label)
    )


@_register
def least_squares_generator_loss(discriminator_gen_outputs, real_label=1.0):
    """LSGAN generator loss, `(D(G(z)) - real_label)² / 2`.

    Args:
        discriminator_gen_outputs: outputs on generated data.
        real_label: the value the generator wants on its samples.

    Returns:
        Scalar mean loss.
    """
    gen = _float(discriminator_gen_outputs)
    return 0.5 * ops.mean(ops.square(gen - real_label))


@_register
def relativistic_standard_discriminator_loss(
    discriminator_real_outputs, discriminator_gen_outputs
):
    """RSGAN discriminator loss, `-log σ(C(x_r) - C(x_f))`, paired samples.

    The relativistic standard GAN: each real sample is compared with the
    generated sample at the same position (not with the batch mean, as in
    `relativistic_discriminator_loss`).

    Args:
        discriminator_real_outputs: logits on real data.
        discriminator_gen_outputs: logits on generated data, same shape.

    Returns:
        Scalar mean loss.
    """
    real, gen = _pair(discriminator_real_outputs, discriminator_gen_outputs)
    return ops.mean(ops.softplus(gen - real))


@_register
def relativistic_standard_generator_loss(
    discriminator_real_outputs, discriminator_gen_outputs
):
    """RSGAN generator loss, `-log σ(C(x_f) - C(x_r))`, paired samples.

    Args:
        discriminator_real_outputs: logits on real data.
        discriminator_gen_outputs: logits on generated data, same shape.

    Returns:
        Scalar mean loss.
    """
    real, gen = _pair(discriminator_real_outputs, discriminator_gen_outputs)
    return ops.mean(ops.softplus(real - gen))


def _relative_to_mean(real, gen):
    """`(C(x_r) - mean C(x_f), C(x_f) - mean C(x_r))`; the two batches
    may differ in size (as in TF-GAN)."""
    real, gen = _float(real), _float(gen)
    return real - ops.mean(gen), gen - ops.mean(real)


@_register
def relativistic_discriminator_loss(
    discriminator_real_outputs, discriminator_gen_outputs
):
    """Relativistic average (RaSGAN) discriminator loss, as TF-GAN's.

    `BCE(C(x_r) - mean C(x_f), 1) + BCE(C(x_f) - mean C(x_r), 0)`, each
    term the mean over its entries: TF-GAN's
    `tfgan.losses.wargs.relativistic_discriminator_loss`, with the same
    arguments and values. For the paired form (RSGAN) see
    `relativistic_standard_discriminator_loss`.

    Args:
        discriminator_real_outputs: logits on real data.
        discriminator_gen_outputs: logits on generated data (the batch
            size may differ from the real one).

    Returns:
        Scalar loss.
    """
    real, gen = _relative_to_mean(
        discriminator_real_outputs, discriminator_gen_outputs
    )
    return _bce(real, 1.0) + _bce(gen, 0.0)


@_register
def relativistic_generator_loss(
    discriminator_real_outputs, discriminator_gen_outputs
):
    """Relativistic average (RaSGAN) generator loss, as TF-GAN's.

    The discriminator loss with the targets swapped,
    `BCE(C(x_r) - mean C(x_f), 0) + BCE(C(x_f) - mean C(x_r), 1)`:
    TF-GAN's `tfgan.losses.wargs.relativistic_generator_loss`. For the
    paired form (RSGAN) see `relativistic_standard_generator_loss`.

    Args:
        discriminator_real_outputs: logits on real data.
        discriminator_gen_outputs: logits on generated data (the batch
            size may differ from the real one).

    Returns:
        Scalar loss.
    """
    real, gen = _relative_to_mean(
        discriminator_real_outputs, discriminator_gen_outputs
    )
    return _bce(real, 0.0) + _bce(gen, 1.0)


@_register
def relativistic_average_discriminator_loss(
    discriminator_real_outputs, discriminator_gen_outputs
):
    """RaSGAN discriminator loss: `relativistic_discriminator_loss`.

    The same function under the paper's name (relativistic average GAN).

    Args:
        discriminator_real_outputs: logits on real data.
        discriminator_gen_outputs: logits on generated data.

    Returns:
        Scalar loss.
    """
    return relativistic_discriminator_loss(
        discriminator_real_outputs, discriminator_gen_outputs
    )


@_register
def relativistic_average_generator_loss(
    discriminator_real_outputs, discriminator_gen_outputs
):
    """RaSGAN generator loss: `relativistic_generator_loss`.

    The same function under the paper's name (relativistic average GAN).

    Args:
        discriminator_real_outputs: logits on real data.
        discriminator_gen_outputs: logits on generated data.

    Returns:
        Scalar loss.
    """
    return relativistic_generator_loss(
        discriminator_real_outputs, discriminator_gen_outputs
    )


@_register
def relativistic_average_least_squares_discriminator_loss(
    discriminator_real_outputs, discriminator_gen_outputs
):
    """RaLSGAN discriminator loss (corrected signs).

    `(C(x_r) - mean C(x_f) - 1)² + (C(x_f) - mean C(x_r) + 1)²`.

    Args:
        discriminator_real_outputs: outputs on real data.
        discriminator_gen_outputs: outputs on generated data.

    Returns:
        Scalar mean loss.
    """
    real, gen = _relative_to_mean(
        discriminator_real_outputs, discriminator_gen_outputs
    )
    return ops.mean(ops.square(real - 1.0)) + ops.mean(ops.square(gen + 1.0))


@_register
def relativistic_average_least_squares_generator_loss(
    discriminator_real_outputs, discriminator_gen_outputs
):
    """RaLSGAN generator loss: the discriminator loss with targets swapped.

    `(C(x_f) - mean C(x_r) - 1)² + (C(x_r) - mean C(x_f) + 1)²`.

    Args:
        discriminator_real_outputs: outputs on real data.
        discriminator_gen_outputs: outputs on generated data.

    Returns:
        Scalar mean loss.
    """
    real, gen = _relative_to_mean(
        discriminator_real_outputs, discriminator_gen_outputs
    )
    return ops.mean(ops.square(gen - 1.0)) + ops.mean(ops.square(real + 1.0))


def _generator_only(fn):
    return lambda real, gen: fn(gen)


class _Objective(NamedTuple):
    """One GAN objective as `AdversarialObjective` uses it.

    `d_loss(real, gen)` and `g_loss(real, gen)` take discriminator outputs;
    `reversal_exact` says whether the generator loss is minus the
    discriminator's generated-data term, so that the 2-pass
    gradient-reversal form is exact. No label smoothing.
    """

    d_loss: Callable
    g_loss: Callable
    reversal_exact: bool


# name -> _Objective(d_loss, g_loss, reversal_exact).
OBJECTIVES = {
    "minimax": _Objective(
        lambda real, gen: minimax_discriminator_loss(real, gen, 0.0),
        _generator_only(minimax_generator_loss),
        True,
    ),
    "modified": _Objective(
        lambda real, gen: modified_discriminator_loss(real, gen, 0.0),
        _generator_only(modified_generator_loss),
        False,
    ),
    "wasserstein": _Objective(
        wasserstein_discriminator_loss,
        _generator_only(wasserstein_generator_loss),
        True,
    ),
    "hinge": _Objective(
        wasserstein_hinge_discriminator_loss,
        _generator_only(wasserstein_hinge_generator_loss),
        False,
    ),
    "least_squares": _Objective(
        least_squares_discriminator_loss,
        _generator_only(least_squares_generator_loss),
        False,
    ),
    "rsgan": _Objective(
        relativistic_standard_discriminator_loss,
        relativistic_standard_generator_loss,
        False,
    ),
    "rasgan": _Objective(
        relativistic_discriminator_loss,
        relativistic_generator_loss,
        False,
    ),
    "ralsgan": _Objective(
        relativistic_average_least_squares_discriminator_loss,
        relativistic_average_least_squares_generator_loss,
        False,
    ),
}
# Bidirectional (ALI / BiGAN) objectives: the discriminator scores pairs,
# and the generator-side loss has a term on each side, since both the real
# pair (x, E(x)) and the generated pair (G(z), z) carry gradient to a model.
OBJECTIVES.update(
    {
        # ALI's minimax form: the encoder and generator maximise L_D.
        "ali_minimax": _Objective(
            lambda real, gen: _bce(real, 1.0) + _bce(gen, 0.0),
            lambda real, gen: -(_bce(real, 1.0) + _bce(gen, 0.0)),
            True,
        ),
        # The swapped non-saturating form: -log(1 - D) on the real pair,
        # -log D on the generated pair.
        "ali_non_saturating": _Objective(
            lambda real, gen: _bce(real, 1.0) + _bce(gen, 0.0),
            lambda real, gen: _bce(real, 0.0) + _bce(gen, 1.0),
            False,
        ),
        # Su Jianlin's derived form: both pairs push D up, -log D on each.
        "ali_su": _Objective(
            lambda real, gen: _bce(real, 1.0) + _bce(gen, 0.0),
            lambda real, gen: _bce(real, 1.0) + _bce(gen, 1.0),
            False,
        ),
    }
)
# Other names of the objectives above: each family of loss functions by its
# prefix (`relativistic` is TF-GAN's name of RaSGAN).
ALIASES = {
    "non_saturating": "modified",
    "wasserstein_hinge": "hinge",
    "relativistic": "rasgan",
    "relativistic_average": "rasgan",
    "relativistic_standard": "rsgan",
    "relativistic_average_least_squares": "ralsgan",
}
