"""The encoder families `build_bert` builds: BERT, RoBERTa / XLM-R,
DistilBERT, ELECTRA (discriminator) and ALBERT.

They share BERT's post-LayerNorm encoder and differ in a few switches,
chosen from the HuggingFace `config.json`'s `model_type`:

- `positions`: `"absolute"` (0, 1, ... as BERT) or `"after_padding"`
  (RoBERTa: `pad_token_id + 1 + ` the count of non-pad tokens so far;
  pads take `pad_token_id`).
- `token_types`: whether there is a segment input and embedding.
- `pooler`: `"default"` (built unless `pooler=False`), `"optional"`
  (built only with `pooler=True`: RoBERTa was pretrained without one,
  and `roberta-base` ships none) or `"none"`.
- `embedding_size` (ELECTRA, ALBERT): embeddings narrower than the
  hidden size, projected by `embeddings_project` (always there in
  ALBERT: `project="always"`).
- `shared_layers` (ALBERT): one block's layers, called
  `num_hidden_layers` times.
- `heads`: the pre-training heads its checkpoints carry (`"mlm"`,
  `"nsp"`, `"discriminator"`); `mlm_act`: the MLM head's activation
  where it is not `hidden_act` (RoBERTa's `lm_head` and ELECTRA's
  generator always use the erf GELU).

Checkpoint tensor names are converted to Google's BERT names by
`hf_to_google`, for every family, from the names alone.
"""

import re

__all__ = ["FAMILIES", "family_config", "hf_to_google"]

_BERT = {
    "positions": "absolute",
    "token_types": True,
    "pooler": "default",
    "project": "if_narrower",
    "shared_layers": False,
    "heads": ("mlm", "nsp"),
    "mlm_act": None,
}
_ROBERTA = dict(
    _BERT,
    positions="after_padding",
    pooler="optional",
    heads=("mlm",),
    mlm_act="gelu",
)
FAMILIES = {
    "bert": _BERT,
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "camembert": _ROBERTA,
    "distilbert": dict(_BERT, token_types=False, pooler="none", heads=("mlm",)),
    # The discriminator's head, or a generator's MLM head (erf GELU).
    "electra": dict(
        _BERT, pooler="none", heads=("mlm", "discriminator"), mlm_act="gelu"
    ),
    "albert": dict(_BERT, project="always", shared_layers=True),
}
# DistilBERT's config.json keys -> BERT's.
_DISTILBERT_KEYS = {
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "hidden_dim": "intermediate_size",
    "activation": "hidden_act",
    "dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
}


def family_config(config):
    """A copy of `config` under BERT's keys, with its `model_type` checked
    (`"bert"` where absent, as in Google's `bert_config.json`)."""
    config = dict(config)
    model_type = config.setdefault("model_type", "bert")
    if model_type not in FAMILIES:
        raise ValueError(
            f"Unsupported model_type={model_type!r}: build_bert builds "
            f"{sorted(FAMILIES)} (BERT's encoder, with the family's "
            "embeddings)."
        )
    if model_type == "distilbert":
        for old, new in _DISTILBERT_KEYS.items():
            if old in config:
                config.setdefault(new, config.pop(old))
        config["type_vocab_size"] = 0
        config.setdefault("layer_norm_eps", 1e-12)  # fixed in DistilBERT
    if model_type == "albert":
        config.setdefault("embedding_size", 128)  # AlbertConfig's defaults
        config.setdefault("hidden_act", "gelu_new")
        for key in ("num_hidden_groups", "inner_group_num"):
            if config.get(key, 1) != 1:
                raise ValueError(
                    f"ALBERT with {key}={config[key]} is not supported: "
                    "build_bert shares one block's weights across all "
                    "layers (num_hidden_groups=1, inner_group_num=1, as in "
                    "every released ALBERT)."
                )
    return config


# ------------------------------------------------------------ HF names
_PREFIXES = ("bert.", "roberta.", "electra.", "distilbert.", "albert.")
_MLM = "cls/predictions/transform/"
_PARTS = {
    "embeddings.word_embeddings": "bert/embeddings/word_embeddings",
    "embeddings.token_type_embeddings": "bert/embeddings/token_type_embeddings",
    "embeddings.position_embeddings": "bert/embeddings/position_embeddings",
    "embeddings.LayerNorm": "bert/embeddings/LayerNorm",
    "embeddings_project": "bert/embeddings_project",  # ELECTRA
    "encoder.embedding_hidden_mapping_in": "bert/embeddings_project",  # ALBERT
    "pooler.dense": "bert/pooler/dense",
    "pooler": "bert/pooler/dense",  # ALBERT
    "cls.predictions.transform.dense": _MLM + "dense",
    "cls.predictions.transform.LayerNorm": _MLM + "LayerNorm",
    # The other families' MLM heads: transform dense + LayerNorm.
    "lm_head.dense": _MLM + "dense",  # RoBERTa / XLM-R
    "lm_head.layer_norm": _MLM + "LayerNorm",
    "vocab_transform": _MLM + "dense",  # DistilBERT
    "vocab_layer_norm": _MLM + "LayerNorm",
    "predictions.dense": _MLM + "dense",  # ALBERT
    "predictions.LayerNorm": _MLM + "LayerNorm",
    "generator_predictions.dense": _MLM + "dense",  # ELECTRA's generator
    "generator_predictions.LayerNorm": _MLM + "LayerNorm",
    # ELECTRA's discriminator (replaced-token detection).
    "discriminator_predictions.dense": "cls/discriminator_predictions/dense",
    "discriminator_predictions.dense_prediction": (
        "cls/discriminator_predictions/dense_prediction"
    ),
}
# The MLM output bias (the output matrix is the tied word embedding).
_OUTPUT_BIAS = (
    "cls.predictions.bias",
    "lm_head.bias",
    "lm_head.decoder.bias",
    "vocab_projector.bias",
    "predictions.bias",
    "predictions.decoder.bias",
    "generator_lm_head.bias",
)
# ALBERT's one shared block (num_hidden_groups = inner_group_num = 1).
_ALBERT_LAYER = re.compile(
    r"^encoder\.albert_layer_groups\.0\.albert_layers\.0\.(.+)$"
)
_ALBERT_PARTS = {
    "attention.query": "attention/self/query",
    "attention.key": "attention/self/key",
    "attention.value": "attention/self/value",
    "attention.dense": "attention/output/dense",
    "attention.LayerNorm": "attention/output/LayerNorm",
    "ffn": "intermediate/dense",
    "ffn_output": "output/dense",
    "full_layer_layer_norm": "output/LayerNorm",
}
_LAYER = re.compile(r"^(?:encoder|transformer)\.layer\.(\d+)\.(.+)$")
_DISTILBERT_LAYER = {
    "attention.q_lin": "attention/self/query",
    "attention.k_lin": "attention/self/key",
    "attention.v_lin": "attention/self/value",
    "attention.out_lin": "attention/output/dense",
    "sa_layer_norm": "attention/output/LayerNorm",
    "ffn.lin1": "intermediate/dense",
    "ffn.lin2": "output/dense",
    "output_layer_norm": "output/LayerNorm",
}
# Tied duplicates (of the word embedding, of the output bias) and buffers.
_SKIPPED = (
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
    "lm_head.decoder.weight",
    "vocab_projector.weight",
    "predictions.decoder.weight",
    "generator_lm_head.weight",
    "embeddings.position_ids",
    "embeddings.token_type_ids",
)


def hf_to_google(name):
    """`(google_name, transpose)` for a HF tensor name, or None to skip it.

    Unknown names come back as `"<hf>" + name` (reported as unused).
    """
    base_name = name
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            base_name = name[len(prefix) :]
            break
    if base_name in _SKIPPED:
        return None
    if base_name in _OUTPUT_BIAS:
        return "cls/predictions/output_bias", False
    # NSP (BERT) / sentence-order (ALBERT): both store [2, hidden].
    if base_name in (
        "cls.seq_relationship.weight",
        "sop_classifier.classifier.weight",
    ):
        return "cls/seq_relationship/output_weights", False
    if base_name in (
        "cls.seq_relationship.bias",
        "sop_classifier.classifier.bias",
    ):
        return "cls/seq_relationship/output_bias", False
    if "." not in base_name:
        return f"<hf>{name}", False
    base, leaf = base_name.rsplit(".", 1)
    match = _LAYER.match(base)
    albert = _ALBERT_LAYER.match(base)
    if match:
        part = _DISTILBERT_LAYER.get(match[2], match[2].replace(".", "/"))
        google = f"bert/encoder/layer_{match[1]}/{part}"
    elif albert and albert[1] in _ALBERT_PARTS:
        google = f"bert/encoder/layer_0/{_ALBERT_PARTS[albert[1]]}"
    else:
        google = _PARTS.get(base)
        if google is None:
            return f"<hf>{name}", False  # reported as unused
    if google.endswith("_embeddings") and leaf == "weight":
        return google, False
    if google.endswith("LayerNorm"):  # old HF files say gamma / beta
        leaf = {"weight": "gamma", "bias": "beta"}.get(leaf, leaf)
        return f"{google}/{leaf}", False
    if leaf == "weight":  # a torch Linear weight is [out, in]
        return f"{google}/kernel", True
    if leaf == "bias":
        return f"{google}/bias", False
    return f"<hf>{name}", False
