"""RoBERTa / XLM-R, DistilBERT, ELECTRA and ALBERT on BERT's encoder.

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
FAMILIES = [
    "roberta",
    "xlm_roberta",
    "distilbert",
    "electra",
    "electra_generator",
    "albert",
]
# The input names each family's model takes (without padding_mask).
INPUTS = {
    "roberta": ["token_ids", "segment_ids"],
    "xlm_roberta": ["token_ids", "segment_ids"],
    "distilbert": ["token_ids"],
    "electra": ["token_ids", "segment_ids"],
    "electra_generator": ["token_ids", "segment_ids"],
    "albert": ["token_ids", "segment_ids"],
}
# The pre-training heads each fixture's checkpoint carries, compared with
# transformers' *ForMaskedLM / ElectraForPreTraining / AlbertForPreTraining.
HEADS = {
    "roberta": {"mlm": True},
    "xlm_roberta": {},
    "distilbert": {"mlm": True},
    "electra": {"discriminator": True},
    "electra_generator": {"mlm": True},
    "albert": {"mlm": True, "nsp": True},
}
HEAD_OUTPUTS = {
    "mlm": "mlm_logits",
    "nsp": "nsp_logits",
    "discriminator": "discriminator_logits",
}


def reference(family):
    with np.load(FIXTURES / family / "reference.npz") as data:
        return dict(data)


def max_differences(model, ref):
    """Largest |ours - transformers| per output and per attention map."""
    capture = keras_cool.OutputCapture(model, "layer_*/attention/softmax*")
    arrays = capture.predict([ref[t.name] for t in model.inputs], batch_size=3)
    found = {
        key: float(np.abs(value - ref[key]).max())
        for key, value in arrays.pop("outputs").items()
    }
    for key, probs in arrays.items():
        # "layer_1/attention/softmax", or "layer_0/attention/softmax[2]"
        # for the third call of ALBERT's shared block.
        match = re.match(r"layer_(\d+)/.*?(?:\[(\d+)\])?$", key)
        layer = int(match[2] or match[1])
        found[f"attention_{layer}"] = float(
            np.abs(probs - ref[f"attention_{layer}"]).max()
        )
    return found


@pytest.mark.parametrize("padding_mask", [False, True], ids=["ids", "mask"])
@pytest.mark.parametrize("family", FAMILIES)
def test_family_matches_transformers(family, padding_mask):
    """Sequence output, pooled output (XLM-R and ALBERT, saved with a
    pooler), every attention map and the logits of the heads the
    checkpoint carries within 1e-5 of transformers, padded rows too."""
    ref = reference(family)
    assert (ref["padding_mask"] == 0).any(), "the batch must hold pads"
    folder = FIXTURES / family
    model = build_bert(
        folder / "config.json",
        padding_mask=padding_mask,
        pooler=True if family == "xlm_roberta" else None,
        **HEADS[family],
    )
    names = INPUTS[family] + ["padding_mask"] * padding_mask
    assert [t.name for t in model.inputs] == names
    report = load_bert_weights(model, folder)  # strict
    assert not report["missing"] and not report["unused"]
    assert not report["skipped"]  # every head of the checkpoint is used
    found = max_differences(model, ref)
    print(family, found)  # shown with pytest -s
    layers = load_bert_config(folder)["num_hidden_layers"]
    want = {"sequence_output"} | {f"attention_{i}" for i in range(layers)}
    if family in ("xlm_roberta", "albert"):
        want.add("pooled_output")
    want |= {HEAD_OUTPUTS[head] for head in HEADS[family]}
    assert want <= set(ref)
    assert set(found) == want
    assert max(found.values()) < 1e-5, found
    # Without a capture, inference runs the fused attention kernel.
    fused = model.predict([ref[t.name] for t in model.inputs], verbose=0)
    for key in want:
        if not key.startswith("attention_"):
            np.testing.assert_allclose(fused[key], ref[key], 1e-5, 1e-5)


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
    """A model built without the checkpoint's heads lists them as skipped;
    a head the family's checkpoints lack is refused at build time."""
    report = load_bert_weights(
        build_bert(FIXTURES / "electra"), FIXTURES / "electra"
    )
    assert "bert/embeddings_project/kernel" in report["loaded"]
    assert report["skipped"] == [
        "cls/discriminator_predictions/dense/bias",
        "cls/discriminator_predictions/dense/kernel",
        "cls/discriminator_predictions/dense_prediction/bias",
        "cls/discriminator_predictions/dense_prediction/kernel",
    ]
    report = load_bert_weights(
        build_bert(FIXTURES / "albert"), FIXTURES / "albert"
    )
    assert report["skipped"] == [
        "cls/predictions/output_bias",
        "cls/predictions/transform/LayerNorm/beta",
        "cls/predictions/transform/LayerNorm/gamma",
        "cls/predictions/transform/dense/bias",
        "cls/predictions/transform/dense/kernel",
        "cls/seq_relationship/output_bias",
        "cls/seq_relationship/output_weights",
    ]
    with pytest.raises(ValueError, match="nsp=True.*'roberta'.*mlm=True"):
        build_bert(FIXTURES / "roberta", nsp=True)
    with pytest.raises(ValueError, match="nsp=True.*'distilbert'"):
        build_bert(FIXTURES / "distilbert", nsp=True)
    with pytest.raises(ValueError, match="discriminator=True.*'bert'"):
        build_bert(FIXTURES / "tiny_bert", discriminator=True)
    with pytest.raises(ValueError, match="nsp=True reads the pooled"):
        build_bert(FIXTURES / "albert", nsp=True, pooler=False)


def test_mlm_heads_follow_each_family():
    """RoBERTa's lm_head (and ELECTRA's generator) use the erf GELU
    whatever hidden_act says;
    ALBERT's transform maps to the (narrower) embedding size, tied to the
    word embedding; a head loaded from the checkpoint is a real one (a
    random head is far off)."""
    roberta = build_bert(FIXTURES / "roberta", hidden_act="gelu_new", mlm=True)
    assert roberta.get_layer("mlm_transform").activation.__name__ == "gelu"
    generator = build_bert(
        FIXTURES / "electra_generator", hidden_act="gelu_new", mlm=True
    )
    assert generator.get_layer("mlm_transform").activation.__name__ == "gelu"
    assert generator.get_layer("mlm_transform").units == 16
    albert = build_bert(FIXTURES / "albert", mlm=True)
    assert albert.get_layer("mlm_transform").units == 16  # embedding_size
    assert albert.get_layer("layer_0").get_layer("intermediate").units == 64
    ref = reference("albert")
    inputs = [ref["token_ids"], ref["segment_ids"]]
    random = albert.predict(inputs, verbose=0)["mlm_logits"]
    assert np.abs(random - ref["mlm_logits"]).max() > 1e-2
    load_bert_weights(albert, FIXTURES / "albert")
    loaded = albert.predict(inputs, verbose=0)["mlm_logits"]
    np.testing.assert_allclose(loaded, ref["mlm_logits"], 1e-5, 1e-5)


def test_albert_shares_one_block_across_layers():
    """One set of block weights for all layers (as transformers' ALBERT
    with num_hidden_groups=1), so 3 layers hold the weights of 1."""
    config = load_bert_config(FIXTURES / "albert")
    assert config["num_hidden_layers"] == 3
    model = build_bert(FIXTURES / "albert", pooler=False)
    names = [layer.name for layer in model.layers]
    assert "layer_0" in names and "layer_1" not in names
    deeper = build_bert(dict(config, num_hidden_layers=6), pooler=False)
    assert deeper.count_params() == model.count_params()
    report = load_bert_weights(model, FIXTURES / "albert", strict=False)
    assert "bert/embeddings_project/kernel" in report["loaded"]
    assert "bert/encoder/layer_0/output/LayerNorm/gamma" in report["loaded"]
    for key in ("num_hidden_groups", "inner_group_num"):
        with pytest.raises(ValueError, match=f"{key}=2 is not supported"):
            build_bert(dict(config, **{key: 2}))


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
    with pytest.raises(ValueError, match="model_type='nezha'.*'roberta'"):
        load_bert_config(dict(config, model_type="nezha"))
    # RoBERTa's positions start at pad_token_id + 1: 40 - 2 = 38 tokens.
    assert build_bert(FIXTURES / "roberta", sequence_length=38)
    with pytest.raises(ValueError, match=r"\[1, 38\].*pad_token_id"):
        build_bert(FIXTURES / "roberta", sequence_length=39)
    electra = build_bert(FIXTURES / "electra")
    assert electra.get_layer("token_embedding").output_dim == 16
    assert electra.get_layer("embeddings_project").units == 32


@pytest.mark.parametrize(
    "family", ["roberta", "distilbert", "electra", "albert"]
)
def test_family_saves_and_loads_in_safe_mode(family, tmp_path):
    """With its heads and shared layers (ALBERT), the model reloads in
    safe mode (no Lambda layers) and predicts the same."""
    ref = reference(family)
    model = build_bert(
        FIXTURES / family,
        checkpoint=FIXTURES / family,
        padding_mask=True,
        **HEADS[family],
    )
    path = tmp_path / f"{family}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert not [
        layer
        for layer in loaded.layers
        if isinstance(layer, keras.layers.Lambda)
    ]
    assert len(loaded.weights) == len(model.weights)
    inputs = [ref[t.name] for t in model.inputs]
    want = model.predict(inputs, verbose=0)
    got = loaded.predict(inputs, verbose=0)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], 1e-6, 1e-6)
        np.testing.assert_allclose(want[key], ref[key], 1e-5, 1e-5)
