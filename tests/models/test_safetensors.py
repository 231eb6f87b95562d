"""HuggingFace safetensors, read lazily: bf16 / fp16, shards, one tensor
at a time."""

import json

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from keras_cool.models import build_bert
from keras_cool.models import load_bert_weights
from keras_cool.models import read_bert_weights
from keras_cool.models._safetensors import SafetensorsReader
from tests.models.conftest import FIXTURE
from tests.models.conftest import HF_DIR

SINGLE = HF_DIR / "model.safetensors"


def model_values(model):
    return {v.path: np.asarray(v.numpy()) for v in model.weights}


def save_as(tmp_path, dtype):
    tensors = {
        name: value.astype(dtype) if value.dtype.kind == "f" else value
        for name, value in load_file(SINGLE).items()
    }
    path = tmp_path / f"model_{np.dtype(dtype).name}.safetensors"
    save_file(tensors, path)
    return path


@pytest.mark.parametrize(
    "dtype,header,bits",
    [(ml_dtypes.bfloat16, "BF16", 8), (np.float16, "F16", 11)],
    ids=["bfloat16", "float16"],
)
def test_half_precision_file_matches_its_float32_twin(
    tmp_path, dtype, header, bits
):
    """Every weight equals the float32 twin's rounded to the file's dtype,
    so within its precision (2^-8 relative for bfloat16)."""
    path = save_as(tmp_path, dtype)
    reader = SafetensorsReader([path])
    assert {reader.dtype(n) for n in reader.names()} == {header}
    twin = build_bert(FIXTURE, checkpoint=SINGLE, mlm=True, nsp=True)
    model = build_bert(FIXTURE, checkpoint=path, mlm=True, nsp=True)
    assert model.weights[0].dtype == "float32"
    want, got = model_values(twin), model_values(model)
    for name, value in want.items():
        rounded = value.astype(dtype).astype("float32")
        np.testing.assert_array_equal(got[name], rounded, err_msg=name)
        np.testing.assert_allclose(
            got[name], value, rtol=2.0**-bits, atol=1e-6, err_msg=name
        )
    weights = read_bert_weights(path)
    assert weights["bert/pooler/dense/kernel"].dtype == dtype


def write_shards(folder, tensors, count):
    names = sorted(tensors)
    weight_map = {}
    for k in range(count):
        shard = f"model-{k + 1:05d}-of-{count:05d}.safetensors"
        keys = names[k::count]
        save_file({n: tensors[n] for n in keys}, folder / shard)
        weight_map.update({n: shard for n in keys})
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


def test_two_shards_with_an_index_load_equal_to_the_single_file(tmp_path):
    index = write_shards(tmp_path, load_file(SINGLE), 2)
    single = build_bert(FIXTURE, checkpoint=SINGLE, mlm=True, nsp=True)
    want = model_values(single)
    for path in (tmp_path, index):  # the folder, or the index itself
        model = build_bert(FIXTURE, checkpoint=path, mlm=True, nsp=True)
        got = model_values(model)
        assert sorted(got) == sorted(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_missing_shard_or_tensor_is_named(tmp_path):
    index = write_shards(tmp_path, load_file(SINGLE), 2)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002"):
        read_bert_weights(tmp_path)
    write_shards(tmp_path, load_file(SINGLE), 2)
    data = json.loads(index.read_text())
    data["weight_map"]["bert.extra.weight"] = "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="lacks 'bert.extra.weight'"):
        read_bert_weights(tmp_path)


def test_loading_reads_one_tensor_at_a_time(monkeypatch):
    """Shapes come from the header: a mismatch raises before any tensor is
    read, and a load reads each tensor once, never a whole file."""
    reads = []
    read = SafetensorsReader.read
    monkeypatch.setattr(
        SafetensorsReader,
        "read",
        lambda self, name: reads.append(name) or read(self, name),
    )
    monkeypatch.setattr(
        "safetensors.numpy.load_file",
        lambda *a, **k: pytest.fail("a whole file was read"),
    )
    config = dict(json.loads((FIXTURE / "bert_config.json").read_text()))
    with pytest.raises(ValueError, match="Shape mismatch"):
        load_bert_weights(build_bert(dict(config, vocab_size=50)), HF_DIR)
    assert reads == []
    model = build_bert(FIXTURE, mlm=True, nsp=True)
    report = load_bert_weights(model, HF_DIR)
    assert len(reads) == len(set(reads)) == len(report["loaded"])
