"""keras_cool.layers: public objects are listed in `__all__`."""

from keras_cool.layers.center_loss_dense import CenterLossDense
from keras_cool.layers.gaussian_mixture_prior import GaussianMixturePrior
from keras_cool.layers.variational_sampling import VariationalSampling

__all__ = [
    "CenterLossDense",
    "GaussianMixturePrior",
    "VariationalSampling",
]
