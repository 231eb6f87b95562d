"""Bad inputs of keras_cool.layers (see tests/bad_input_rows.py)."""

import math

import keras
import numpy as np

from keras_cool import layers as kl
from tests.bad_input_rows import NAN
from tests.bad_input_rows import B
from tests.bad_input_rows import C
from tests.bad_input_rows import Row
from tests.bad_input_rows import symbolic


def gmp_logits():
    z, lv = symbolic((3,), (3,))
    logits = keras.layers.Dense(4)(z)
    return kl.GaussianMixturePrior(4)([z, lv, logits])


def gmp_eager_logits():
    z = np.zeros((2, 3), "float32")
    layer = kl.GaussianMixturePrior(4)
    return layer([z, z, np.full((2, 4), 3.0, "float32")])


def center_float_labels():
    feats = keras.Input((3,))
    labels = keras.Input((), dtype="float32")
    return kl.CenterLossDense(4)(feats, labels=labels)


def center_eager_float_labels():
    layer = kl.CenterLossDense(3)
    return layer(np.zeros((2, 2), "float32"), labels=np.array([0.0, 1.7]))


def discriminator():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def adversarial_mismatch():
    real, fake = symbolic((4,), (5,))
    return kl.AdversarialObjective(discriminator())([real, fake])


ROWS = [
    Row(
        "vs-beta-nan",
        "VariationalSampling",
        C,
        lambda: kl.VariationalSampling(beta=NAN),
        ValueError,
        "beta",
    ),
    Row(
        "vs-beta-neg",
        "VariationalSampling",
        C,
        lambda: kl.VariationalSampling(beta=-1),
        ValueError,
        "beta",
    ),
    Row(
        "vs-beta-str",
        "VariationalSampling",
        C,
        lambda: kl.VariationalSampling(beta="1"),
        TypeError,
        "beta",
    ),
    Row(
        "vs-inputs",
        "VariationalSampling",
        B,
        lambda: kl.VariationalSampling()(symbolic((3,))[0]),
        ValueError,
        "[mean, log_var]",
    ),
    Row(
        "vs-pair",
        "VariationalSampling",
        B,
        lambda: kl.VariationalSampling()(symbolic((3,), (4,))),
        ValueError,
        "same shape",
    ),
    Row(
        "gmp-classes",
        "GaussianMixturePrior",
        C,
        lambda: kl.GaussianMixturePrior(1),
        ValueError,
        "num_classes",
    ),
    Row(
        "gmp-classes-str",
        "GaussianMixturePrior",
        C,
        lambda: kl.GaussianMixturePrior("10"),
        TypeError,
        "num_classes",
    ),
    Row(
        "gmp-kl-nan",
        "GaussianMixturePrior",
        C,
        lambda: kl.GaussianMixturePrior(3, kl_weight=NAN),
        ValueError,
        "kl_weight",
    ),
    Row(
        "gmp-balance",
        "GaussianMixturePrior",
        C,
        lambda: kl.GaussianMixturePrior(3, balance_weight=-1),
        ValueError,
        "balance_weight",
    ),
    Row(
        "gmp-marginal-inf",
        "GaussianMixturePrior",
        C,
        lambda: kl.GaussianMixturePrior(3, marginal_weight=math.inf),
        ValueError,
        "marginal_weight",
    ),
    Row(
        "gmp-classes-mismatch",
        "GaussianMixturePrior",
        B,
        lambda: kl.GaussianMixturePrior(3)(symbolic((2,), (2,), (4,))),
        ValueError,
        "num_classes=3",
    ),
    Row(
        "gmp-logits",
        "GaussianMixturePrior",
        B,
        gmp_logits,
        ValueError,
        "y_prob",
    ),
    Row(
        "gmp-eager-logits",
        "GaussianMixturePrior",
        C,
        gmp_eager_logits,
        ValueError,
        "y_prob",
    ),
    Row(
        "cld-units-str",
        "CenterLossDense",
        C,
        lambda: kl.CenterLossDense("10"),
        TypeError,
        "units",
    ),
    Row(
        "cld-units",
        "CenterLossDense",
        C,
        lambda: kl.CenterLossDense(1),
        ValueError,
        "units",
    ),
    Row(
        "cld-weight-nan",
        "CenterLossDense",
        C,
        lambda: kl.CenterLossDense(3, center_weight=NAN),
        ValueError,
        "center_weight",
    ),
    Row(
        "cld-float-labels",
        "CenterLossDense",
        B,
        center_float_labels,
        TypeError,
        "labels",
    ),
    Row(
        "cld-eager-float-labels",
        "CenterLossDense",
        C,
        center_eager_float_labels,
        TypeError,
        "labels",
    ),
    Row(
        "cld-features",
        "CenterLossDense",
        B,
        lambda: kl.CenterLossDense(3)(keras.Input((2, 2))),
        ValueError,
        "features",
    ),
    Row(
        "gs-mode",
        "GradientSwitch",
        C,
        lambda: kl.GradientSwitch("flip"),
        ValueError,
        "mode",
    ),
    Row(
        "gs-scale-nan",
        "GradientSwitch",
        C,
        lambda: kl.GradientSwitch(scale=NAN),
        ValueError,
        "scale",
    ),
    Row(
        "gs-scale-str",
        "GradientSwitch",
        C,
        lambda: kl.GradientSwitch(scale="1"),
        ValueError,
        "scale",
    ),
    Row(
        "ao-loss",
        "AdversarialObjective",
        C,
        lambda: kl.AdversarialObjective(discriminator(), loss="nope"),
        ValueError,
        "loss",
    ),
    Row(
        "ao-passes",
        "AdversarialObjective",
        C,
        lambda: kl.AdversarialObjective(discriminator(), passes=4),
        ValueError,
        "passes",
    ),
    Row(
        "ao-passes-2",
        "AdversarialObjective",
        C,
        lambda: kl.AdversarialObjective(
            discriminator(), loss="hinge", passes=2
        ),
        ValueError,
        "passes=3",
    ),
    Row(
        "ao-weight-nan",
        "AdversarialObjective",
        C,
        lambda: kl.AdversarialObjective(discriminator(), generator_weight=NAN),
        ValueError,
        "generator_weight",
    ),
    Row(
        "ao-separate",
        "AdversarialObjective",
        C,
        lambda: kl.AdversarialObjective(
            discriminator(), separate_batches="yes"
        ),
        ValueError,
        "separate_batches",
    ),
    Row(
        "ao-disc",
        "AdversarialObjective",
        C,
        lambda: kl.AdversarialObjective("D"),
        TypeError,
        "discriminator",
    ),
    Row(
        "ao-mismatch",
        "AdversarialObjective",
        B,
        adversarial_mismatch,
        ValueError,
        "generated_samples",
    ),
    Row(
        "pe-length-float",
        "PositionEmbedding",
        C,
        lambda: kl.PositionEmbedding(2.7),
        ValueError,
        "sequence_length",
    ),
    Row(
        "pe-length-str",
        "PositionEmbedding",
        C,
        lambda: kl.PositionEmbedding("512"),
        TypeError,
        "sequence_length",
    ),
    Row(
        "pe-length-zero",
        "PositionEmbedding",
        C,
        lambda: kl.PositionEmbedding(0),
        ValueError,
        "sequence_length",
    ),
    Row(
        "pe-inputs",
        "PositionEmbedding",
        B,
        lambda: kl.PositionEmbedding(4)(keras.Input((9, 3))),
        ValueError,
        "sequence_length=4",
    ),
]
