"""keras_cool.layers: public objects are listed in `__all__`."""

from keras_cool.layers.gan_objective import GANObjective
from keras_cool.layers.gradient_switch import GradientSwitch

__all__ = ["GANObjective", "GradientSwitch"]
