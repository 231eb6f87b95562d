"""keras_cool.losses: public objects are listed in `__all__`."""

from keras_cool.losses.gan import least_squares_discriminator_loss
from keras_cool.losses.gan import least_squares_generator_loss
from keras_cool.losses.gan import minimax_discriminator_loss
from keras_cool.losses.gan import minimax_generator_loss
from keras_cool.losses.gan import modified_discriminator_loss
from keras_cool.losses.gan import modified_generator_loss
from keras_cool.losses.gan import relativistic_average_discriminator_loss
from keras_cool.losses.gan import relativistic_average_generator_loss
from keras_cool.losses.gan import (
    relativistic_average_least_squares_discriminator_loss,
)
from keras_cool.losses.gan import (
    relativistic_average_least_squares_generator_loss,
)
from keras_cool.losses.gan import relativistic_discriminator_loss
from keras_cool.losses.gan import relativistic_generator_loss
from keras_cool.losses.gan import wasserstein_discriminator_loss
from keras_cool.losses.gan import wasserstein_generator_loss
from keras_cool.losses.gan import wasserstein_hinge_discriminator_loss
from keras_cool.losses.gan import wasserstein_hinge_generator_loss

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
    "wasserstein_discriminator_loss",
    "wasserstein_generator_loss",
    "wasserstein_hinge_discriminator_loss",
    "wasserstein_hinge_generator_loss",
]
