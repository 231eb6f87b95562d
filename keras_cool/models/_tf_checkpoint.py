"""Reads TensorFlow checkpoints (tensor bundles) with numpy alone.

A checkpoint `prefix` is `prefix.index`, a table in LevelDB's SSTable
format mapping each variable name to a `BundleEntryProto` (dtype, shape,
shard, offset, size), and `prefix.data-NNNNN-of-MMMMM`, the raw tensor
bytes. Both are parsed here by hand: the table's blocks and a few
protobuf fields, with a varint reader. No TensorFlow is imported.

Supported: every numeric dtype and `bool`, `bfloat16` (`ml_dtypes`, a
Keras dependency) and strings; uncompressed index blocks, and
snappy-compressed ones where `cramjam` or `python-snappy` is installed.
Refused with a `ValueError`: partitioned (sliced) variables, unknown
dtypes, big-endian bundles, and files whose sizes disagree with their
entries. Block and tensor CRCs are not verified.
"""

import os
import struct

import numpy as np

__all__ = ["TFCheckpoint", "list_tf_checkpoint", "read_tf_checkpoint"]

_MAGIC = 0xDB4775248B80FB57  # LevelDB's kTableMagicNumber
_FOOTER = 48  # two BlockHandles padded to 40 bytes, then the magic
_TRAILER = 5  # per block: compression type (1 byte) + masked crc32c

# tensorflow/core/framework/types.proto: DataType -> numpy dtype.
_DTYPES = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    7: "object",  # DT_STRING
    8: "complex64",
    9: "int64",
    10: "bool",
    14: "bfloat16",
    17: "uint16",
    18: "complex128",
    19: "float16",
    22: "uint32",
    23: "uint64",
}
_DT_STRING = 7


def _fail(prefix, message):
    raise ValueError(f"TensorFlow checkpoint {prefix!r}: {message}")


# ------------------------------------------------------------- decoding
def _varint(buffer, position):
    """`(value, next_position)` of the base-128 varint at `position`."""
    value = shift = 0
    while True:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _signed(value):
    """An int64 protobuf field (two's complement on 64 bits)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(message):
    """A protobuf message as `{field_number: [raw values]}`."""
    fields = {}
    position = 0
    while position < len(message):
        key, position = _varint(message, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(message, position)
        elif wire == 1:
            value = struct.unpack_from("<Q", message, position)[0]
            position += 8
        elif wire == 2:
            size, position = _varint(message, position)
            value = bytes(message[position : position + size])
            position += size
        elif wire == 5:
            value = struct.unpack_from("<I", message, position)[0]
            position += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _shape(message):
    """A `TensorShapeProto`: dims (field 2), each `Dim.size` (field 1)."""
    fields = _fields(message)
    if fields.get(3, [0])[0]:
        raise ValueError("a tensor of unknown rank")
    return tuple(
        _signed(_fields(dim).get(1, [0])[0]) for dim in fields.get(2, [])
    )


# ---------------------------------------------------------------- table
def _decompress_snappy(data, prefix):
    try:
        import cramjam
    except ImportError:
        pass
    else:
        return bytes(cramjam.snappy.decompress_raw(data))
    try:
        import snappy
    except ImportError:
        _fail(
            prefix,
            "its .index has snappy-compressed blocks; install cramjam "
            "(pip install cramjam) or python-snappy to read them.",
        )
    return snappy.decompress(data)


def _block(data, handle, prefix):
    """The contents of the block at `handle = (offset, size)`."""
    offset, size = handle
    if offset + size + _TRAILER > len(data):
        _fail(prefix, "its .index is truncated (a block runs past its end).")
    kind = data[offset + size]
    contents = data[offset : offset + size]
    if kind == 0:
        return contents
    if kind == 1:
        return _decompress_snappy(bytes(contents), prefix)
    _fail(prefix, f"its .index uses unknown block compression {kind}.")


def _entries(block):
    """`(key, value)` pairs of a block (prefix-compressed keys)."""
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 * (restarts + 1)
    position, key = 0, b""
    while position < end:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        size, position = _varint(block, position)
        key = key[:shared] + bytes(block[position : position + unshared])
        position += unshared
        yield key, bytes(block[position : position + size])
        position += size


def _handle(value):
    offset, position = _varint(value, 0)
    size, _ = _varint(value, position)
    return offset, size


def _table(path, prefix):
    """Every `(key, value)` of the SSTable at `path`, in key order."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _FOOTER:
        _fail(prefix, "its .index is too short to be a table.")
    if struct.unpack_from("<Q", data, len(data) - 8)[0] != _MAGIC:
        _fail(prefix, "its .index is not a TensorFlow (V2) checkpoint index.")
    footer = memoryview(data)[len(data) - _FOOTER :]
    _, position = _varint(footer, _varint(footer, 0)[1])  # metaindex handle
    index_offset, position = _varint(footer, position)
    index_size, _ = _varint(footer, position)
    index = _block(data, (index_offset, index_size), prefix)
    for _, handle in _entries(index):
        yield from _entries(_block(data, _handle(handle), prefix))


# --------------------------------------------------------------- bundle
def _bundle(prefix):
    """`(num_shards, {name: entry fields})` from `prefix.index`."""
    header, entries = None, {}
    for key, value in _table(prefix + ".index", prefix):
        if key == b"":
            header = _fields(value)
        else:
            entries[key.decode("utf-8")] = _fields(value)
    if header is None:
        _fail(prefix, "its .index has no bundle header.")
    if header.get(2, [0])[0] != 0:
        _fail(prefix, "big-endian checkpoints are not supported.")
    return header.get(1, [1])[0], entries


def _check(prefix, name, fields):
    """`(dtype, shape)` of an entry, or a clear error."""
    if 7 in fields:
        _fail(
            prefix,
            f"variable {name!r} is partitioned (saved in slices); "
            "partitioned variables are not supported: restore and save it "
            "whole with TensorFlow first.",
        )
    code = fields.get(1, [0])[0]
    if code not in _DTYPES:
        _fail(
            prefix,
            f"variable {name!r} has TensorFlow dtype number {code}, which "
            f"this reader does not support (it reads {sorted(_DTYPES)}).",
        )
    return _DTYPES[code], _shape(fields.get(2, [b""])[0])


def list_tf_checkpoint(prefix):
    """`{name: (dtype name, shape)}` of a checkpoint, reading no tensor."""
    prefix = os.fspath(prefix)
    _, entries = _bundle(prefix)
    return {
        name: _check(prefix, name, fields)
        for name, fields in sorted(entries.items())
    }


def _read_strings(f, count, size):
    """DT_STRING: `count` varint lengths, a crc32c, then the bytes."""
    raw = f.read(size)
    lengths, position = [], 0
    for _ in range(count):
        length, position = _varint(raw, position)
        lengths.append(length)
    position += 4  # masked crc32c of the lengths
    values = np.empty(count, dtype=object)
    for i, length in enumerate(lengths):
        values[i] = raw[position : position + length]
        position += length
    return values


def _read(prefix, name, fields, files, num_shards):
    dtype, shape = _check(prefix, name, fields)
    shard = fields.get(3, [0])[0]
    offset, size = fields.get(4, [0])[0], fields.get(5, [0])[0]
    path = f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"
    if path not in files:
        if not os.path.isfile(path):
            _fail(prefix, f"its data file {os.path.basename(path)} is missing.")
        files[path] = open(path, "rb")  # noqa: SIM115 (closed by the caller)
    f = files[path]
    f.seek(offset)
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == "object":
        return _read_strings(f, count, size).reshape(shape)
    if dtype == "bfloat16":
        import ml_dtypes

        dtype = ml_dtypes.bfloat16
    dtype = np.dtype(dtype)
    if size != count * dtype.itemsize:
        _fail(
            prefix,
            f"variable {name!r} of shape {shape} and dtype {dtype} should "
            f"take {count * dtype.itemsize} bytes, its entry says {size}.",
        )
    array = np.fromfile(f, dtype=dtype, count=count)
    if array.size != count:
        _fail(prefix, f"{os.path.basename(path)} ends inside {name!r}.")
    return array.reshape(shape)


class TFCheckpoint:
    """Shapes and (on demand) values of a checkpoint's variables.

    The `.index` is parsed once; `read(name)` reads one tensor from its
    data file. `close()` closes the data files.
    """

    def __init__(self, prefix):
        self.prefix = os.fspath(prefix)
        self._shards, self._entries = _bundle(self.prefix)
        self._files = {}

    def names(self):
        return sorted(self._entries)

    def shape(self, name):
        return _check(self.prefix, name, self._entries[name])[1]

    def read(self, name):
        return _read(
            self.prefix, name, self._entries[name], self._files, self._shards
        )

    def close(self):
        for f in self._files.values():
            f.close()
        self._files.clear()


def read_tf_checkpoint(prefix, skip=None):
    """Reads a TensorFlow checkpoint into `{name: numpy array}`.

    Args:
        prefix: the checkpoint prefix, e.g. `".../bert_model.ckpt"` (the
            files are `prefix.index` and `prefix.data-*`).
        skip: optional `fn(name) -> bool`; variables it accepts are not
            read (e.g. optimizer slots).

    Returns:
        dict from variable name to a numpy array, as
        `tf.train.load_checkpoint(prefix).get_tensor(name)` gives it.
    """
    checkpoint = TFCheckpoint(prefix)
    try:
        return {
            name: checkpoint.read(name)
            for name in checkpoint.names()
            if skip is None or not skip(name)
        }
    finally:
        checkpoint.close()
