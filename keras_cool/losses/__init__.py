"""keras_cool.losses: GAN losses; public objects are listed in `__all__`.

The functions live in `keras_cool.losses.gan`, whose `__all__` is this
package's `__all__`.
"""

from keras_cool.losses.gan import *  # noqa: F403
from keras_cool.losses.gan import __all__  # noqa: F401
