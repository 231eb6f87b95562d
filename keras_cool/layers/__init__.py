"""keras_cool.layers: public objects are listed in `__all__`."""

from keras_cool.layers.adversarial_objective import AdversarialObjective
from keras_cool.layers.bias_add import BiasAdd
from keras_cool.layers.center_loss_dense import CenterLossDense
from keras_cool.layers.gaussian_mixture_prior import GaussianMixturePrior
from keras_cool.layers.gradient_switch import GradientSwitch
from keras_cool.layers.position_embedding import PositionEmbedding
from keras_cool.layers.snapshot_penalty import SnapshotPenalty
from keras_cool.layers.variational_sampling import VariationalSampling

__all__ = [
    "AdversarialObjective",
    "BiasAdd",
    "CenterLossDense",
    "GaussianMixturePrior",
    "GradientSwitch",
    "PositionEmbedding",
    "SnapshotPenalty",
    "VariationalSampling",
]
