"""Data shared by several examples: image sets that work offline.

Not an example itself (the leading underscore keeps it out of the example
runs). Real downloads (MNIST, Fashion-MNIST) stay behind flags for users
with a network. Examples import it as `from _data import load_images`: the
folder of a script run as `python examples/x.py` is on `sys.path`.
"""

import numpy as np


def load_images(name="digits", quick=False):
    """Return (x, y): float32 images in [0, 1] shaped (n, h, w, 1), int labels.

    `digits` is scikit-learn's bundled 8x8 handwritten digits (1,797
    images, works offline); `mnist` and `fashion_mnist` download through
    `keras.datasets` (28x28, train and test joined).
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        x = (data.images / 16.0).astype("float32")[..., None]
        y = data.target.astype("int64")
    elif name in ("mnist", "fashion_mnist"):
        import keras

        loader = getattr(keras.datasets, name)
        (x1, y1), (x2, y2) = loader.load_data()
        x = (np.concatenate([x1, x2]) / 255.0).astype("float32")[..., None]
        y = np.concatenate([y1, y2]).astype("int64")
    else:
        raise ValueError(
            f"Unknown dataset {name!r}: use digits, mnist or fashion_mnist."
        )
    if quick:
        x, y = x[:256], y[:256]
    return x, y


def add_dataset_argument(parser):
    """Adds `--dataset digits|mnist|fashion_mnist` (see `load_images`)."""
    parser.add_argument(
        "--dataset",
        default="digits",
        choices=["digits", "mnist", "fashion_mnist"],
        help="digits: scikit-learn's 8x8 digits (offline); mnist and "
        "fashion_mnist download through keras.datasets.",
    )
