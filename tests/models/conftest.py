"""The tiny BERT fixture: Google TF1 checkpoint, HF twin, references.

Written by `fixtures/make_bert_fixture.py` (transformers 4.57.6); the
tests read the committed files and need neither transformers nor torch.
"""

import importlib.util
import pathlib

import numpy as np
import pytest

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "tiny_bert"
CHECKPOINT = FIXTURE / "bert_model.ckpt"
HF_DIR = FIXTURE / "hf"
HAS_TF = importlib.util.find_spec("tensorflow") is not None
needs_tensorflow = pytest.mark.skipif(
    not HAS_TF,
    reason="compares with TensorFlow's own checkpoint reader (pip install "
    "tensorflow); the same values are checked against its recorded digests",
)
LOAD_PATHS = [
    pytest.param(CHECKPOINT, id="tf_checkpoint"),
    pytest.param(HF_DIR, id="hf_folder"),
    pytest.param(HF_DIR / "model.safetensors", id="safetensors_file"),
]


@pytest.fixture(scope="session")
def reference():
    with np.load(FIXTURE / "reference.npz") as data:
        return dict(data)
