"""The TensorFlow-free reader of TF1 checkpoints (tensor bundles)."""

import hashlib
import importlib.util
import json
import os
import pathlib
import struct
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_cool.models import build_bert
from keras_cool.models import load_bert_weights
from keras_cool.models import read_bert_weights
from keras_cool.models._tf_checkpoint import _table
from keras_cool.models._tf_checkpoint import list_tf_checkpoint
from keras_cool.models._tf_checkpoint import read_tf_checkpoint
from tests.models.conftest import CHECKPOINT
from tests.models.conftest import needs_tensorflow

GOOGLE = pathlib.Path(__file__).parent / "fixtures" / "google_tiny"
GOOGLE_CHECKPOINT = GOOGLE / "bert_model.ckpt"
CHECKPOINTS = [
    pytest.param(CHECKPOINT, id="tiny_bert"),
    pytest.param(GOOGLE_CHECKPOINT, id="google_tiny"),
]
REPO = pathlib.Path(__file__).parents[2]


@pytest.mark.parametrize("prefix", CHECKPOINTS)
def test_reads_what_tensorflow_reads_bit_for_bit(prefix):
    """dtype, shape and sha256 of every variable as TensorFlow read it
    (fixtures/make_checkpoint_digests.py), slots and global_step included."""
    digests = json.loads((prefix.parent / "tf_digests.json").read_text())
    values = read_tf_checkpoint(prefix)
    assert sorted(values) == sorted(digests)
    assert "global_step" in values and any("adam_m" in n for n in values)
    for name, (dtype, shape, sha) in digests.items():
        array = values[name]
        assert (str(array.dtype), list(array.shape)) == (dtype, shape), name
        assert hashlib.sha256(array.tobytes()).hexdigest() == sha, name
    listed = list_tf_checkpoint(prefix)
    assert listed["global_step"] == ("int64", ())


@needs_tensorflow
@pytest.mark.parametrize("prefix", CHECKPOINTS)
def test_equals_tf_train_load_checkpoint(prefix):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    values = read_tf_checkpoint(prefix)
    assert sorted(values) == sorted(reader.get_variable_to_shape_map())
    for name, array in values.items():
        want = reader.get_tensor(name)
        assert array.dtype == want.dtype and array.shape == want.shape
        assert array.tobytes() == want.tobytes(), name


def test_google_checkpoint_loads_strictly_into_build_bert():
    model = build_bert(GOOGLE, checkpoint=GOOGLE_CHECKPOINT, mlm=True, nsp=True)
    report = load_bert_weights(model, GOOGLE_CHECKPOINT)
    assert not report["missing"] and not report["unused"]
    assert not report["skipped"]
    weights = read_bert_weights(GOOGLE)  # the folder finds the checkpoint
    assert (
        not any("adam" in n for n in weights) and "global_step" not in weights
    )
    np.testing.assert_array_equal(
        model.get_layer("token_embedding").embeddings.numpy(),
        weights["bert/embeddings/word_embeddings"],
    )
    ids = np.array([[2, 5, 6, 3, 0]], "int32")
    out = model.predict([ids, np.zeros_like(ids)], verbose=0)
    assert np.isfinite(out["mlm_logits"]).all()


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="TensorFlow is the backend: it is imported anyway",
)
def test_tensorflow_is_never_imported():
    """In a fresh process on JAX / torch: reading and loading both Google
    checkpoints leaves 'tensorflow' out of sys.modules."""
    code = (
        "import sys\n"
        "from keras_cool.models import build_bert, read_bert_weights\n"
        f"build_bert({str(GOOGLE)!r}, checkpoint={str(GOOGLE_CHECKPOINT)!r})\n"
        f"read_bert_weights({str(CHECKPOINT)!r})\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "print('no tensorflow')\n"
    )
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no tensorflow" in done.stdout


def test_reads_with_tensorflow_unimportable(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    weights = read_bert_weights(CHECKPOINT)
    assert "bert/pooler/dense/kernel" in weights


# ------------------------------------------- tables written by the test
def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number, value):
    """A protobuf field: varint for ints, length-delimited for bytes."""
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def entry(dtype, shape, offset, size, extra=b""):
    dims = b"".join(field(2, field(1, d)) for d in shape)
    return (
        field(1, dtype)
        + field(2, dims)
        + field(4, offset)
        + field(5, size)
        + extra
    )


def block(pairs, compress=None):
    """A table block (every key whole: one restart per entry)."""
    body, restarts = bytearray(), []
    for key, value in pairs:
        restarts.append(len(body))
        body += varint(0) + varint(len(key)) + varint(len(value))
        body += key + value
    body += b"".join(struct.pack("<I", r) for r in restarts)
    body += struct.pack("<I", len(restarts))
    kind = 0
    if compress is not None:
        body, kind = compress(bytes(body)), 1
    return bytes(body) + bytes([kind]) + b"\0\0\0\0"


def write_table(path, pairs, compress=None, per_block=7):
    """An SSTable of `pairs` (sorted), several data blocks."""
    data, index = bytearray(), []
    for start in range(0, len(pairs), per_block):
        chunk = pairs[start : start + per_block]
        blob = block(chunk, compress)
        handle = varint(len(data)) + varint(len(blob) - 5)
        index.append((chunk[-1][0], handle))
        data += blob
    meta = (len(data), len(block([])) - 5)
    data += block([])
    index_handle = (len(data), len(block(index)) - 5)
    data += block(index)
    footer = varint(meta[0]) + varint(meta[1])
    footer += varint(index_handle[0]) + varint(index_handle[1])
    footer = footer.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    pathlib.Path(path).write_bytes(bytes(data) + footer)


HEADER = (b"", field(1, 1))  # BundleHeaderProto: num_shards=1


def tiny_bundle(tmp_path, entries, data=b"\0" * 64):
    prefix = tmp_path / "model.ckpt"
    write_table(str(prefix) + ".index", [HEADER, *entries])
    (tmp_path / "model.ckpt.data-00000-of-00001").write_bytes(data)
    return prefix


def test_multi_block_table_written_here_reads_back(tmp_path):
    """The fixture's own entries, rewritten in 7-entry blocks."""
    pairs = list(_table(str(CHECKPOINT) + ".index", "x"))
    prefix = tmp_path / "copy.ckpt"
    write_table(str(prefix) + ".index", pairs)
    data = pathlib.Path(str(CHECKPOINT) + ".data-00000-of-00001")
    (
        tmp_path / ("copy.ckpt" + data.name[len("bert_model.ckpt") :])
    ).write_bytes(data.read_bytes())
    want = read_tf_checkpoint(CHECKPOINT)
    got = read_tf_checkpoint(prefix)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].tobytes() == want[name].tobytes()


def test_bfloat16_float16_and_strings(tmp_path):
    import ml_dtypes

    bf16 = np.array([1.5, -2.25, 3.0], ml_dtypes.bfloat16)
    half = np.array([[0.5, 7.0]], "float16")
    words = [b"a", b"longer"]
    strings = b"".join(varint(len(w)) for w in words) + b"\0" * 4
    strings += b"".join(words)
    data = bf16.tobytes() + half.tobytes() + strings
    offsets = (0, 6, 10)
    prefix = tiny_bundle(
        tmp_path,
        [
            (b"bf16", entry(14, (3,), offsets[0], 6)),
            (b"half", entry(19, (1, 2), offsets[1], 4)),
            (b"words", entry(7, (2,), offsets[2], len(strings))),
        ],
        data,
    )
    values = read_tf_checkpoint(prefix)
    assert values["bf16"].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(values["bf16"], bf16)
    np.testing.assert_array_equal(values["half"], half)
    assert list(values["words"]) == words


def test_partitioned_variables_are_refused(tmp_path):
    slices = field(7, field(1, field(1, 0) + field(2, 2)))
    prefix = tiny_bundle(tmp_path, [(b"w", entry(1, (4,), 0, 16, slices))])
    with pytest.raises(ValueError, match="'w' is partitioned"):
        read_tf_checkpoint(prefix)


def test_unknown_dtypes_are_refused(tmp_path):
    prefix = tiny_bundle(tmp_path, [(b"handle", entry(20, (), 0, 8))])
    with pytest.raises(
        ValueError, match="'handle' has TensorFlow dtype number 20"
    ):
        read_tf_checkpoint(prefix)


def test_sizes_that_disagree_and_bad_files_are_refused(tmp_path):
    prefix = tiny_bundle(tmp_path, [(b"w", entry(1, (4,), 0, 12))])
    with pytest.raises(
        ValueError, match="should take 16 bytes, its entry says 12"
    ):
        read_tf_checkpoint(prefix)
    prefix = tiny_bundle(tmp_path, [(b"w", entry(1, (4,), 60, 16))])
    with pytest.raises(ValueError, match="ends inside 'w'"):
        read_tf_checkpoint(prefix)
    (tmp_path / "model.ckpt.index").write_bytes(b"\1" * 64)
    with pytest.raises(ValueError, match="not a TensorFlow .V2. checkpoint"):
        read_tf_checkpoint(prefix)


def test_snappy_blocks_need_a_package(tmp_path, monkeypatch):
    prefix = tmp_path / "model.ckpt"
    write_table(
        str(prefix) + ".index", [HEADER], compress=lambda body: body
    )  # marked snappy: the error comes before any decompression
    monkeypatch.setitem(sys.modules, "cramjam", None)
    monkeypatch.setitem(sys.modules, "snappy", None)
    with pytest.raises(ValueError, match="pip install cramjam"):
        read_tf_checkpoint(prefix)


@pytest.mark.skipif(
    importlib.util.find_spec("cramjam") is None,
    reason="snappy-compressed index blocks need cramjam (pip install cramjam)",
)
def test_snappy_compressed_index_reads(tmp_path):
    import cramjam

    pairs = list(_table(str(GOOGLE_CHECKPOINT) + ".index", "x"))
    prefix = tmp_path / "bert_model.ckpt"
    write_table(
        str(prefix) + ".index",
        pairs,
        compress=lambda body: bytes(cramjam.snappy.compress_raw(body)),
    )
    data = "bert_model.ckpt.data-00000-of-00001"
    (tmp_path / data).write_bytes((GOOGLE / data).read_bytes())
    want = read_tf_checkpoint(GOOGLE_CHECKPOINT)
    got = read_tf_checkpoint(prefix)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].tobytes() == want[name].tobytes()
