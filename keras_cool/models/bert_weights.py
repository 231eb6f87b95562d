"""Read BERT weights (Google TF1 checkpoint or HuggingFace) and load them.

Both formats are read into `{google_name: numpy array}` under Google's
original variable names and layouts (`bert/encoder/layer_0/attention/
self/query/kernel`, kernels `[in, out]`), then assigned to the layers of
a `build_bert` model.
"""

import glob
import os
import re
import warnings

import numpy as np

from keras_cool.models._families import hf_to_google as _hf_to_google
from keras_cool.models._safetensors import SafetensorsReader
from keras_cool.models._safetensors import safetensors_files
from keras_cool.models._tf_checkpoint import TFCheckpoint

__all__ = ["load_bert_weights", "read_bert_weights"]

_SLOTS = ("adam_m", "adam_v", "Adam", "Adam_1", "Momentum")
_SKIPPED_NAMES = ("global_step", "good_steps", "loss_scale")


def _is_training_state(name):
    last = name.rsplit("/", 1)[-1]
    return last in _SLOTS or name in _SKIPPED_NAMES


class _Weights:
    """Google name -> shape and a reader: tensors are read one at a time,
    when asked for (a dict already in memory, a TF checkpoint, or
    safetensors), so loading holds the model plus about one tensor."""

    def __init__(self, shapes, read, close=None):
        self.shapes, self._read, self._close = shapes, read, close

    def read(self, name):
        return self._read(name)

    def close(self):
        if self._close is not None:
            self._close()


def _dict_weights(weights):
    shapes = {name: tuple(np.shape(value)) for name, value in weights.items()}
    return _Weights(shapes, lambda name: np.asarray(weights[name]))


def _safetensors_weights(files):
    reader = SafetensorsReader(files)
    sources, shapes = {}, {}
    for name in reader.names():
        converted = _hf_to_google(name)
        if converted is None:
            continue
        google, transpose = converted
        shape = reader.shape(name)
        shapes[google] = shape[::-1] if transpose else shape
        sources[google] = (name, transpose)

    def read(google):
        name, transpose = sources[google]
        array = reader.read(name)
        return np.ascontiguousarray(array.T) if transpose else array

    return _Weights(shapes, read)


def _tf_weights(prefix):
    checkpoint = TFCheckpoint(prefix)
    names = [n for n in checkpoint.names() if not _is_training_state(n)]
    shapes = {name: checkpoint.shape(name) for name in names}
    return _Weights(shapes, checkpoint.read, checkpoint.close)


def _tf_prefix(path):
    """The checkpoint prefix for a prefix, an .index/.data file or folder."""
    if os.path.isfile(path + ".index"):
        return path
    stripped = re.sub(r"\.(index|data-\d+-of-\d+)$", "", path)
    if stripped != path and os.path.isfile(stripped + ".index"):
        return stripped
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(path, "*.index")))
        if len(found) == 1:
            return found[0][: -len(".index")]
        if len(found) > 1:
            raise ValueError(
                f"{path!r} holds several checkpoints "
                f"{[os.path.basename(f) for f in found]}; pass the prefix "
                "of one, e.g. .../bert_model.ckpt."
            )
    return None


def read_bert_weights(path):
    """Reads BERT weights into `{google_name: numpy array}`.

    The format is detected:

    - a Google TF1 checkpoint: its prefix (`.../bert_model.ckpt`), one of
      its files, or the folder holding it. Read with numpy alone (no
      TensorFlow), bit for bit as `tf.train.load_checkpoint` reads it.
      Optimizer slots (`*/adam_m`, `*/adam_v`) and `global_step` are
      skipped; partitioned variables and unknown dtypes raise
      `ValueError`.
    - HuggingFace: a folder with `model.safetensors` (or a sharded
      `model.safetensors.index.json`), or a `.safetensors` file. Read with
      the `safetensors` package into numpy (no torch or TensorFlow).
      Names and layouts are converted to Google's (Linear weights
      transposed, `LayerNorm.weight`/`bias` to `gamma`/`beta`); the tied
      `cls.predictions.decoder.*` duplicates are dropped. RoBERTa /
      XLM-R (`roberta.*`), DistilBERT (`distilbert.*`, `q_lin`, ...,
      `sa_layer_norm`, `ffn.lin1`, ...), ELECTRA (`electra.*`,
      `embeddings_project` to `bert/embeddings_project`) and ALBERT
      (`albert.*`; `embedding_hidden_mapping_in` to
      `bert/embeddings_project`, the shared block to
      `bert/encoder/layer_0/*`) map to the same names. Their MLM heads
      (`lm_head.*`, `vocab_transform` / `vocab_layer_norm` /
      `vocab_projector`, `predictions.*`) map to `cls/predictions/*`,
      ALBERT's `sop_classifier` to `cls/seq_relationship/*`, ELECTRA's
      `discriminator_predictions.*` to
      `cls/discriminator_predictions/{dense,dense_prediction}/*`, an
      ELECTRA generator's `generator_predictions` / `generator_lm_head`
      to `cls/predictions/*`. Tensors with no BERT meaning keep their
      name, prefixed `<hf>`.

    Args:
        path: see above.

    Returns:
        dict from Google variable name to numpy array.

    Example:

    ```python
    from safetensors.numpy import save_file

    hf = {"bert.embeddings.word_embeddings.weight": np.zeros((100, 16))}
    save_file(hf, "model.safetensors")  # or a Google "bert_model.ckpt"
    weights = keras_cool.models.read_bert_weights("model.safetensors")
    weights["bert/embeddings/word_embeddings"].shape  # (100, 16)
    ```
    """
    weights = _open_weights(path)
    try:
        return {name: weights.read(name) for name in weights.shapes}
    finally:
        weights.close()


def _open_weights(path):
    """A lazy `_Weights` for any `read_bert_weights` path, or a dict."""
    if isinstance(path, dict):
        return _dict_weights(path)
    path = os.fspath(path)
    files = safetensors_files(path)
    if files:
        return _safetensors_weights(files)
    prefix = _tf_prefix(path)
    if prefix is not None:
        return _tf_weights(prefix)
    raise FileNotFoundError(
        f"No BERT weights at {path!r}: expected a Google checkpoint prefix "
        "(bert_model.ckpt, next to bert_model.ckpt.index), a HuggingFace "
        "folder with model.safetensors (or model.safetensors.index.json "
        "and its shards), or a .safetensors file."
    )


# ----------------------------------------------------------- the model
def _weights_of(layer):
    return {v.path.rsplit("/", 1)[-1]: v for v in layer.weights}


def _attention_weights(layer):
    """MHA variables by sub-layer: {"query": {"kernel": v, ...}, ...}."""
    found = {}
    for variable in layer.weights:
        parts = variable.path.split("/")
        found.setdefault(parts[-2], {})[parts[-1]] = variable
    return found


def _targets(model):
    """`{google_name: (variable, transform)}` for a `build_bert` model."""
    layers = {layer.name: layer for layer in model.layers}
    if "token_embedding" not in layers:
        raise ValueError(
            f"Model {model.name!r} has no layer 'token_embedding': pass a "
            "model made by keras_cool.models.build_bert (for a model that "
            "wraps one, pass the inner BERT model)."
        )
    targets = {}

    def add(google, variable, transform=None):
        targets[google] = (variable, transform)

    def dense(google, layer):
        w = _weights_of(layer)
        add(f"{google}/kernel", w["kernel"])
        add(f"{google}/bias", w["bias"])

    def norm(google, layer):
        w = _weights_of(layer)
        add(f"{google}/gamma", w["gamma"])
        add(f"{google}/beta", w["beta"])

    emb = "bert/embeddings/"
    add(emb + "word_embeddings", layers["token_embedding"].embeddings)
    if "segment_embedding" in layers:  # not in DistilBERT
        add(
            emb + "token_type_embeddings",
            layers["segment_embedding"].embeddings,
        )
    add(emb + "position_embeddings", layers["position_embedding"].embeddings)
    norm(emb + "LayerNorm", layers["embeddings_norm"])
    if "embeddings_project" in layers:  # ELECTRA
        dense("bert/embeddings_project", layers["embeddings_project"])
    index = 0
    while f"layer_{index}" in layers:
        google = f"bert/encoder/layer_{index}/"
        block = {layer.name: layer for layer in layers[f"layer_{index}"].layers}
        parts = _attention_weights(block["attention"])
        for part in ("query", "key", "value"):
            for leaf in ("kernel", "bias"):
                add(
                    f"{google}attention/self/{part}/{leaf}",
                    parts[part][leaf],
                    "heads_in",
                )
        out = parts["attention_output"]
        add(
            f"{google}attention/output/dense/kernel", out["kernel"], "heads_out"
        )
        add(f"{google}attention/output/dense/bias", out["bias"])
        norm(f"{google}attention/output/LayerNorm", block["attention_norm"])
        dense(f"{google}intermediate/dense", block["intermediate"])
        dense(f"{google}output/dense", block["output"])
        norm(f"{google}output/LayerNorm", block["output_norm"])
        index += 1
    if "pooler" in layers:
        dense("bert/pooler/dense", layers["pooler"])
    if "mlm_transform" in layers:
        dense("cls/predictions/transform/dense", layers["mlm_transform"])
        norm("cls/predictions/transform/LayerNorm", layers["mlm_norm"])
        add("cls/predictions/output_bias", layers["mlm_bias"].bias)
    if "nsp" in layers:
        w = _weights_of(layers["nsp"])
        add("cls/seq_relationship/output_weights", w["kernel"], "transpose")
        add("cls/seq_relationship/output_bias", w["bias"])
    if "discriminator_dense" in layers:  # ELECTRA
        dense(
            "cls/discriminator_predictions/dense", layers["discriminator_dense"]
        )
        dense(
            "cls/discriminator_predictions/dense_prediction",
            layers["discriminator_prediction"],
        )
    return targets


def _expected_shape(variable, transform):
    """The checkpoint's shape for a model variable (Google layout)."""
    shape = tuple(variable.shape)
    if transform == "transpose":
        return shape[::-1]
    if transform == "heads_in":  # q/k/v kernel (H, heads, d), bias (heads, d)
        return shape[:-2] + (shape[-2] * shape[-1],)
    if transform == "heads_out":  # output kernel (heads, d, H)
        return (shape[0] * shape[1], shape[2])
    return shape


def _check_shapes(targets, shapes):
    """The names to load; a mismatch raises before anything is read."""
    found = []
    for name, (variable, transform) in targets.items():
        if name not in shapes:
            continue
        expected = _expected_shape(variable, transform)
        if tuple(shapes[name]) != expected:
            raise ValueError(
                f"Shape mismatch for {name}: the checkpoint has "
                f"{tuple(shapes[name])}, the model expects {expected} "
                f"(variable {variable.path} of shape "
                f"{tuple(variable.shape)}). Is the config the checkpoint's?"
            )
        found.append(name)
    return found


def load_bert_weights(model, path, strict=True):
    """Loads BERT weights into a `build_bert` model; returns a report.

    Reads `path` with `read_bert_weights` (Google TF1 checkpoint or
    HuggingFace safetensors, detected) and assigns every variable. A
    shape mismatch raises `ValueError` naming the variable and both
    shapes, before anything is assigned. Variables of the model that the
    checkpoint lacks ("missing") and checkpoint variables the model has no
    place for ("unused") raise `ValueError` with `strict=True` and are a
    warning with `strict=False`. Pre-training heads (`cls/*`) of a model
    built without them are not "unused": they are listed as `skipped`,
    as are the other families' heads (`lm_head.*`, `vocab_*`,
    `predictions.*`, `discriminator_predictions.*`, ...) and a pooler the
    model lacks.

    Args:
        model: a model made by `build_bert`.
        path: weights, see `read_bert_weights`; or a dict already read.
        strict: raise (True) or warn (False) on missing / unused
            variables. Defaults to `True`.

    Returns:
        dict with the sorted lists `loaded`, `missing`, `unused` and
        `skipped` (Google names).

    Example:

    ```python
    config = {
        "vocab_size": 100,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
    }
    model = keras_cool.models.build_bert(config)
    # Usually a path: "bert_model.ckpt", or a HuggingFace folder.
    weights = {
        "bert/embeddings/word_embeddings": np.ones((100, 16)),
        "cls/predictions/output_bias": np.zeros(100),
    }
    # strict=False warns about the missing variables instead of raising.
    report = keras_cool.models.load_bert_weights(model, weights, strict=False)
    report["loaded"]  # ['bert/embeddings/word_embeddings']
    report["skipped"]  # ['cls/predictions/output_bias'] (no MLM head)
    ```
    """
    targets = _targets(model)
    weights = _open_weights(path)
    try:
        found = _check_shapes(targets, weights.shapes)
        missing = sorted(set(targets) - set(found))
        extra = sorted(set(weights.shapes) - set(targets))
        heads = ("cls/", "bert/pooler/")  # heads the model was built without
        skipped = [n for n in extra if n.startswith(heads)]
        unused = [n for n in extra if not n.startswith(heads)]
        problems = []
        if missing:
            problems.append(f"missing from the checkpoint: {missing}")
        if unused:
            problems.append(f"in the checkpoint but unused: {unused}")
        if problems:
            message = (
                f"Loading BERT weights into {model.name!r}: "
                + "; ".join(problems)
                + ". Check the config and the heads (mlm=, nsp=, pooler=)"
            )
            if strict:
                raise ValueError(message + ", or pass strict=False.")
            warnings.warn(message + ".", stacklevel=2)
        for name in found:  # one tensor in host memory at a time
            variable, transform = targets[name]
            array = weights.read(name)
            if transform == "transpose":
                array = array.T
            array = array.reshape(tuple(variable.shape))
            variable.assign(array.astype(variable.dtype, copy=False))
            del array
    finally:
        weights.close()
    values = found
    return {
        "loaded": sorted(values),
        "missing": missing,
        "unused": unused,
        "skipped": skipped,
    }
