"""RoBERTa / XLM-R, DistilBERT and ELECTRA on BERT's encoder.

Compared with transformers 4.57.6 on the committed tiny fixtures written
by `fixtures/make_family_fixtures.py` (a padded batch, explicit attention
mask); the tests need neither transformers nor torch.
"""

import json
import pathlib
import re

import keras
import numpy as np
import pytest

import keras_cool
from keras_cool.models import build_bert
from keras_cool.models import load_bert_config
from keras_cool.models import load_bert_weights

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
FAMILIES = ["roberta", "xlm_roberta", "distilbert", "electra"]
# The input names each family's model takes (without padding_mask).
INPUTS = {
    "roberta": ["token_ids", "segment_ids"],
    "xlm_roberta": ["token_ids", "segment_ids"],
    "distilbert": ["token_ids"],
    "electra": ["token_ids", "segment_ids"],
}


def reference(family):
    with np.load(FIXTURES / family / "reference.npz") as data:
        return dict(data)


def max_differences(model, ref):
    """Largest |ours - transformers| per output and per attention map."""
    capture = keras_cool.OutputCapture(model, "layer_*_attention/softmax*")
    arrays = capture.predict([ref[t.name] for t in model.inputs], batch_size=3)
    found = {
        key: float(np.abs(value - ref[key]).max())
        for key, value in arrays.pop("outputs").items()
    }
    for key, probs in arrays.items():
        layer = int(re.match(r"layer_(\d+)_", key)[1])
        found[f"attention_{layer}"] = float(
            np.abs(probs - ref[f"attention_{layer}"]).max()
        )
    return found


@pytest.mark.parametrize("padding_mask", [False, True], ids=["ids", "mask"])
@pytest.mark.parametrize("family", FAMILIES)
def test_family_matches_transformers(family, padding_mask):
    """Sequence output, pooled output (XLM-R, saved with a pooler) and
    every attention map within 1e-5 of transformers, padded rows too."""
    ref = reference(family)
    assert (ref["padding_mask"] == 0).any(), "the batch must hold pads"
    folder = FIXTURES / family
    model = build_bert(
        folder / "config.json",
        padding_mask=padding_mask,
        pooler=True if family == "xlm_roberta" else None,
    )
    names = INPUTS[family] + ["padding_mask"] * padding_mask
    assert [t.name for t in model.inputs] == names
    report = load_bert_weights(model, folder)  # strict
    assert not report["missing"] and not report["unused"]
    found = max_differences(model, ref)
    print(family, found)  # shown with pytest -s
    want = {"sequence_output", "attention_0", "attention_1"}
    if family == "xlm_roberta":
        want.add("pooled_output")
    assert set(found) == want
    assert max(found.values()) < 1e-5, found


def test_roberta_positions_start_after_the_padding_id():
    """BERT's positions (0, 1, ...) on RoBERTa's weights are far off: the
    comparison sees the offset."""
    ref = reference("roberta")
    config = load_bert_config(FIXTURES / "roberta")
    assert config["pad_token_id"] == 1
    wrong = build_bert(dict(config, model_type="bert"), pooler=False)
    load_bert_weights(wrong, FIXTURES / "roberta")
    assert max_differences(wrong, ref)["sequence_output"] > 1e-2
    # Positions follow the non-pad token ids, as in HF: a pad inside a row
    # does not advance them, so real tokens after it keep their outputs.
    model = build_bert(FIXTURES / "roberta", checkpoint=FIXTURES / "roberta")
    ids = np.array([[0, 17, 42, 55, 2]], "int32")
    padded = np.array([[0, 17, 1, 42, 55, 2]], "int32")
    short = model.predict([ids, np.zeros_like(ids)], verbose=0)
    long = model.predict([padded, np.zeros_like(padded)], verbose=0)
    np.testing.assert_allclose(
        long["sequence_output"][:, [0, 1, 3, 4, 5]],
        short["sequence_output"],
        1e-5,
        1e-5,
    )


def test_pooler_follows_the_family():
    # roberta-base ships no pooler: none by default, loads strictly.
    model = build_bert(FIXTURES / "roberta", checkpoint=FIXTURES / "roberta")
    assert set(model.output) == {"sequence_output"}
    with pytest.raises(ValueError, match=r"bert/pooler/dense.*pooler="):
        build_bert(
            FIXTURES / "roberta", checkpoint=FIXTURES / "roberta", pooler=True
        )
    # A checkpoint's pooler that the model lacks is skipped, not unused.
    model = build_bert(FIXTURES / "xlm_roberta")
    report = load_bert_weights(model, FIXTURES / "xlm_roberta")
    assert report["skipped"] == [
        "bert/pooler/dense/bias",
        "bert/pooler/dense/kernel",
    ]
    assert not report["unused"]
    for family in ("distilbert", "electra"):
        with pytest.raises(ValueError, match="has no pooler"):
            build_bert(FIXTURES / family, pooler=True)
    # BERT keeps its pooler; pooler=False drops it.
    tiny = FIXTURES / "tiny_bert"
    assert "pooled_output" in build_bert(tiny).output
    assert "pooled_output" not in build_bert(tiny, pooler=False).output


def test_family_heads_are_skipped_and_refused():
    report = load_bert_weights(
        build_bert(FIXTURES / "electra"), FIXTURES / "electra"
    )
    assert "bert/embeddings_project/kernel" in report["loaded"]
    assert report["skipped"] == [
        "cls/discriminator_predictions.dense.bias",
        "cls/discriminator_predictions.dense.weight",
        "cls/discriminator_predictions.dense_prediction.bias",
        "cls/discriminator_predictions.dense_prediction.weight",
    ]
    with pytest.raises(ValueError, match="mlm=False, nsp=False"):
        build_bert(FIXTURES / "roberta", mlm=True)


def test_family_configs():
    distilbert = load_bert_config(FIXTURES / "distilbert" / "config.json")
    assert distilbert["model_type"] == "distilbert"
    assert distilbert["hidden_size"] == 32
    assert distilbert["num_hidden_layers"] == 2
    assert distilbert["intermediate_size"] == 64
    assert distilbert["hidden_act"] == "gelu"
    assert distilbert["type_vocab_size"] == 0
    assert load_bert_config(FIXTURES / "tiny_bert")["model_type"] == "bert"
    config = json.loads((FIXTURES / "roberta" / "config.json").read_text())
    with pytest.raises(ValueError, match="model_type='albert'.*'roberta'"):
        load_bert_config(dict(config, model_type="albert"))
    # RoBERTa's positions start at pad_token_id + 1: 40 - 2 = 38 tokens.
    assert build_bert(FIXTURES / "roberta", sequence_length=38)
    with pytest.raises(ValueError, match=r"\[1, 38\].*pad_token_id"):
        build_bert(FIXTURES / "roberta", sequence_length=39)
    electra = build_bert(FIXTURES / "electra")
    assert electra.get_layer("token_embedding").output_dim == 16
    assert electra.get_layer("embeddings_project").units == 32


@pytest.mark.parametrize("family", ["roberta", "distilbert", "electra"])
def test_family_saves_and_loads_in_safe_mode(family, tmp_path):
    ref = reference(family)
    model = build_bert(
        FIXTURES / family, checkpoint=FIXTURES / family, padding_mask=True
    )
    path = tmp_path / f"{family}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = [ref[t.name] for t in model.inputs]
    want = model.predict(inputs, verbose=0)["sequence_output"]
    got = loaded.predict(inputs, verbose=0)["sequence_output"]
    np.testing.assert_allclose(got, want, 1e-6, 1e-6)
    np.testing.assert_allclose(want, ref["sequence_output"], 1e-5, 1e-5)
