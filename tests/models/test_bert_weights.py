import json
import sys

import numpy as np
import pytest

from keras_cool.models import build_bert
from keras_cool.models import load_bert_config
from keras_cool.models import load_bert_weights
from keras_cool.models import read_bert_weights
from keras_cool.models._tf_checkpoint import list_tf_checkpoint
from tests.models.conftest import CHECKPOINT
from tests.models.conftest import FIXTURE
from tests.models.conftest import HF_DIR


def google_names(config):
    """Every weight name of google-research/bert with both heads."""
    names = [
        "bert/embeddings/word_embeddings",
        "bert/embeddings/token_type_embeddings",
        "bert/embeddings/position_embeddings",
        "bert/embeddings/LayerNorm/gamma",
        "bert/embeddings/LayerNorm/beta",
        "bert/pooler/dense/kernel",
        "bert/pooler/dense/bias",
        "cls/predictions/transform/dense/kernel",
        "cls/predictions/transform/dense/bias",
        "cls/predictions/transform/LayerNorm/gamma",
        "cls/predictions/transform/LayerNorm/beta",
        "cls/predictions/output_bias",
        "cls/seq_relationship/output_weights",
        "cls/seq_relationship/output_bias",
    ]
    for layer in range(config["num_hidden_layers"]):
        p = f"bert/encoder/layer_{layer}/"
        for part in ("query", "key", "value"):
            names += [f"{p}attention/self/{part}/kernel"]
            names += [f"{p}attention/self/{part}/bias"]
        for dense in ("attention/output/dense", "intermediate/dense"):
            names += [f"{p}{dense}/kernel", f"{p}{dense}/bias"]
        names += [f"{p}output/dense/kernel", f"{p}output/dense/bias"]
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            names += [f"{p}{norm}/gamma", f"{p}{norm}/beta"]
    return sorted(names)


def test_hf_folder_reads_under_google_names_and_layouts():
    config = load_bert_config(FIXTURE)
    weights = read_bert_weights(HF_DIR)
    assert sorted(weights) == google_names(config)
    h, i = config["hidden_size"], config["intermediate_size"]
    layer = "bert/encoder/layer_0/"
    assert weights[layer + "intermediate/dense/kernel"].shape == (h, i)
    assert weights[layer + "output/dense/kernel"].shape == (i, h)
    assert weights["cls/seq_relationship/output_weights"].shape == (2, h)
    assert weights["bert/embeddings/word_embeddings"].shape == (
        config["vocab_size"],
        h,
    )


def test_tf_checkpoint_equals_its_safetensors_twin():
    """Google's names, slots and global_step skipped, values bit-equal."""
    names = list(list_tf_checkpoint(CHECKPOINT))
    assert "global_step" in names and any("adam_m" in n for n in names)
    weights = read_bert_weights(CHECKPOINT)
    twin = read_bert_weights(HF_DIR)
    assert sorted(weights) == sorted(twin)
    for name in weights:
        np.testing.assert_array_equal(weights[name], twin[name], err_msg=name)
    # The checkpoint's files and folder name the same checkpoint.
    for path in (FIXTURE, str(CHECKPOINT) + ".index"):
        assert sorted(read_bert_weights(path)) == sorted(weights)


def test_missing_safetensors_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match="pip install safetensors"):
        read_bert_weights(HF_DIR)


def test_unknown_path_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="bert_model.ckpt"):
        read_bert_weights(tmp_path / "nothing")


def test_heads_the_model_lacks_are_skipped_not_errors():
    model = build_bert(FIXTURE)
    report = load_bert_weights(model, HF_DIR)
    assert not report["missing"] and not report["unused"]
    assert report["skipped"] and all(
        n.startswith("cls/") for n in report["skipped"]
    )
    assert "bert/encoder/layer_1/output/LayerNorm/beta" in report["loaded"]


def test_shape_mismatch_names_the_variable_and_both_shapes():
    config = dict(load_bert_config(FIXTURE), vocab_size=50)
    model = build_bert(config)
    with pytest.raises(ValueError) as error:
        load_bert_weights(model, HF_DIR)
    message = str(error.value)
    assert "bert/embeddings/word_embeddings" in message
    assert "(97, 32)" in message and "(50, 32)" in message


def test_missing_and_unused_are_errors_or_warnings():
    weights = read_bert_weights(HF_DIR)
    fewer = dict(weights)
    del fewer["bert/pooler/dense/bias"]
    fewer["bert/encoder/layer_9/output/dense/bias"] = np.zeros(32, "float32")
    model = build_bert(FIXTURE)
    before = model.get_layer("pooler").bias.numpy().copy()
    with pytest.raises(ValueError) as error:
        load_bert_weights(model, fewer)
    assert "missing from the checkpoint: ['bert/pooler/dense/bias']" in str(
        error.value
    )
    assert "layer_9/output/dense/bias" in str(error.value)
    np.testing.assert_array_equal(model.get_layer("pooler").bias, before)
    with pytest.warns(UserWarning, match="unused"):
        report = load_bert_weights(model, fewer, strict=False)
    assert report["missing"] == ["bert/pooler/dense/bias"]
    assert report["unused"] == ["bert/encoder/layer_9/output/dense/bias"]
    np.testing.assert_array_equal(
        model.get_layer("pooler").kernel.numpy(),
        weights["bert/pooler/dense/kernel"],
    )


def test_a_deeper_config_reports_missing_layers():
    config = dict(load_bert_config(FIXTURE), num_hidden_layers=3)
    with pytest.raises(ValueError, match="layer_2"):
        load_bert_weights(build_bert(config), HF_DIR)


def test_bert_model_names_and_sharded_safetensors(tmp_path):
    """HF `BertModel` files (no "bert." prefix), split in two shards."""
    from safetensors.numpy import load_file
    from safetensors.numpy import save_file

    tensors = load_file(HF_DIR / "model.safetensors")
    bare = {
        k[len("bert.") :]: v
        for k, v in tensors.items()
        if k.startswith("bert.")
    }
    names = sorted(bare)
    shards = {"a.safetensors": names[::2], "b.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: bare[k] for k in keys}, tmp_path / shard)
        weight_map.update({k: shard for k in keys})
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    weights = read_bert_weights(tmp_path)
    expected = read_bert_weights(HF_DIR)
    assert sorted(weights) == sorted(
        n for n in expected if n.startswith("bert/")
    )
    for name, value in weights.items():
        np.testing.assert_array_equal(value, expected[name])
