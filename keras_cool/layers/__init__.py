"""keras_cool.layers: public objects are listed in `__all__`."""

from keras_cool.layers.adversarial_objective import AdversarialObjective
from keras_cool.layers.gradient_switch import GradientSwitch

__all__ = ["AdversarialObjective", "GradientSwitch"]
