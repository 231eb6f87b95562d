"""HuggingFace safetensors, read lazily: one tensor at a time.

`SafetensorsReader` opens every file with `safetensors.safe_open(...,
framework="numpy")` (a memory map; no torch, no TensorFlow) and gives each
tensor's shape and dtype from the file header, reading a tensor's bytes
only when asked for it. A folder may hold one `model.safetensors` or
shards listed by `model.safetensors.index.json`. bfloat16 tensors come
back as `ml_dtypes.bfloat16` arrays (`ml_dtypes` is a Keras dependency;
importing it lets numpy, hence safetensors, name the type).
"""

import json
import os

__all__ = ["SafetensorsReader", "safetensors_files"]

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def _index_files(index):
    """`{tensor name: shard path}` from a `model.safetensors.index.json`."""
    with open(index, encoding="utf-8") as f:
        weight_map = json.load(f).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(
            f"{index!r} has no 'weight_map': a sharded checkpoint's index "
            "maps each tensor name to its shard file."
        )
    folder = os.path.dirname(index)
    shards = {name: os.path.join(folder, s) for name, s in weight_map.items()}
    lacking = sorted({s for s in shards.values() if not os.path.isfile(s)})
    if lacking:
        raise FileNotFoundError(
            f"{index!r} lists shards that are not there: "
            f"{[os.path.basename(s) for s in lacking]}; download every "
            "shard next to the index."
        )
    return shards


def safetensors_files(path):
    """The tensors' files of `path`: `{name: file}` for a sharded folder or
    index, `[file]` for one file or a folder with `model.safetensors`, or
    None where `path` is neither."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, INDEX)):
            return _index_files(os.path.join(path, INDEX))
        single = os.path.join(path, SINGLE)
        return [single] if os.path.isfile(single) else None
    if path.endswith(".safetensors.index.json") and os.path.isfile(path):
        return _index_files(path)
    if path.endswith(".safetensors") and os.path.isfile(path):
        return [path]
    return None


class SafetensorsReader:
    """Shapes, dtypes and (on demand) values of safetensors tensors.

    Args:
        files: a list of `.safetensors` paths (every tensor of each), or
            `{tensor name: path}` from a shard index (those tensors only).
    """

    def __init__(self, files):
        try:
            from safetensors import safe_open
        except ImportError as error:
            raise ImportError(
                "Reading HuggingFace safetensors needs the safetensors "
                "package (no torch needed): pip install safetensors"
            ) from error
        import ml_dtypes  # noqa: F401 (numpy learns the name "bfloat16")

        handles = {}
        self._where = {}
        for path in sorted(
            set(files.values() if isinstance(files, dict) else files)
        ):
            handles[path] = safe_open(path, framework="numpy")
        if isinstance(files, dict):
            for name, path in files.items():
                if name not in handles[path].keys():
                    raise ValueError(
                        f"{os.path.basename(path)!r} lacks {name!r}, which "
                        "the shard index places there."
                    )
                self._where[name] = handles[path]
        else:
            for handle in handles.values():
                for name in handle.keys():
                    self._where[name] = handle

    def names(self):
        return list(self._where)

    def shape(self, name):
        return tuple(self._where[name].get_slice(name).get_shape())

    def dtype(self, name):
        """The header's dtype name: `"F32"`, `"F16"`, `"BF16"`, ..."""
        return self._where[name].get_slice(name).get_dtype()

    def read(self, name):
        return self._where[name].get_tensor(name)
