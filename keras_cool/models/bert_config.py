"""Read and check a `bert_config.json` (Google) or `config.json` (HF)."""

import json
import os

from keras_cool.models._families import family_config

__all__ = ["load_bert_config"]

_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)
_DEFAULTS = {
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}
CONFIG_FILES = ("bert_config.json", "config.json")


def config_path(path):
    """The config file of a directory, a checkpoint prefix or a file."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        folder = path
    elif os.path.isfile(path + ".index"):  # a checkpoint prefix
        folder = os.path.dirname(path)
    else:
        folder = None
    for name in CONFIG_FILES if folder is not None else ():
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"No BERT config at {path!r}: pass a bert_config.json / config.json "
        f"file, a folder holding one of {CONFIG_FILES}, or a dict."
    )


def load_bert_config(config):
    """Returns a complete BERT config dict.

    Args:
        config: a dict, a path to `bert_config.json` (Google) or
            `config.json` (HuggingFace), or a folder (or checkpoint prefix)
            next to such a file. Missing optional keys get BERT's defaults
            (`layer_norm_eps=1e-12`, `pad_token_id=0`, ...). A HuggingFace
            `model_type` of `"roberta"`, `"xlm-roberta"`, `"camembert"`,
            `"distilbert"` (its `dim`, `n_layers`, ... renamed to BERT's
            keys, `type_vocab_size=0`), `"electra"` or `"albert"`
            (`num_hidden_groups` and `inner_group_num` must be 1) is kept;
            other model types raise `ValueError`.

    Returns:
        A new dict with at least the keys of Google's `bert_config.json`
        and `model_type` (`"bert"` where the config has none).

    Example:

    ```python
    import json

    google = {"vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2}
    google |= {"num_attention_heads": 2, "intermediate_size": 32}
    with open("bert_config.json", "w") as f:
        json.dump(google, f)
    config = keras_cool.models.load_bert_config(".")  # or the file's path
    config["hidden_size"], config["layer_norm_eps"]  # (16, 1e-12)
    ```
    """
    if not isinstance(config, dict):
        with open(config_path(config), encoding="utf-8") as f:
            config = json.load(f)
    config = family_config(config)
    missing = [key for key in _REQUIRED if key not in config]
    if missing:
        raise ValueError(
            f"The BERT config lacks {missing}; a bert_config.json holds "
            f"{list(_REQUIRED)} and optionally {list(_DEFAULTS)}."
        )
    merged = dict(_DEFAULTS)
    merged.update({k: v for k, v in config.items() if v is not None})
    if merged.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            "Only absolute position embeddings are supported, got "
            f"position_embedding_type={merged['position_embedding_type']!r}."
        )
    hidden, heads = merged["hidden_size"], merged["num_attention_heads"]
    if hidden % heads:
        raise ValueError(
            f"hidden_size={hidden} is not a multiple of "
            f"num_attention_heads={heads}."
        )
    return merged
