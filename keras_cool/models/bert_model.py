"""`build_bert`: a BERT encoder as a Functional model of stock layers."""

import keras
from keras import ops

from keras_cool.layers.bias_add import BiasAdd
from keras_cool.layers.position_embedding import PositionEmbedding
from keras_cool.models._activations import activation
from keras_cool.models.bert_config import load_bert_config
from keras_cool.models.bert_weights import load_bert_weights

__all__ = ["build_bert"]


def _dense(units, name, config, act=None):
    init = keras.initializers.TruncatedNormal(
        stddev=config["initializer_range"]
    )
    return keras.layers.Dense(
        units, activation=act, kernel_initializer=init, name=name
    )


def _norm(name, config):
    return keras.layers.LayerNormalization(
        epsilon=config["layer_norm_eps"], name=name
    )


def _encoder_layer(x, mask, index, config, act):
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    dropout = config["hidden_dropout_prob"]
    prefix = f"layer_{index}"
    init = keras.initializers.TruncatedNormal(
        stddev=config["initializer_range"]
    )
    attention = keras.layers.MultiHeadAttention(
        heads,
        hidden // heads,
        dropout=config["attention_probs_dropout_prob"],
        kernel_initializer=init,
        name=f"{prefix}_attention",
    )(x, x, attention_mask=mask)
    attention = keras.layers.Dropout(
        dropout, name=f"{prefix}_attention_dropout"
    )(attention)
    x = keras.layers.Add(name=f"{prefix}_attention_add")([x, attention])
    x = _norm(f"{prefix}_attention_norm", config)(x)
    h = _dense(
        config["intermediate_size"], f"{prefix}_intermediate", config, act
    )(x)
    h = _dense(hidden, f"{prefix}_output", config)(h)
    h = keras.layers.Dropout(dropout, name=f"{prefix}_output_dropout")(h)
    x = keras.layers.Add(name=f"{prefix}_output_add")([x, h])
    return _norm(f"{prefix}_output_norm", config)(x)


def build_bert(
    config,
    checkpoint=None,
    mlm=False,
    nsp=False,
    hidden_act=None,
    sequence_length=None,
    name="bert",
    padding_mask=False,
):
    """Builds BERT (Devlin et al.) from its config, optionally loaded.

    A Functional `keras.Model` of stock Keras layers (`Embedding`,
    `ReversibleEmbedding`, `MultiHeadAttention`, `LayerNormalization`,
    `Dense`, `Dropout`, `Add`) and two small registered keras_cool layers
    (`PositionEmbedding`, `BiasAdd`), so it saves to `.keras` and loads in
    safe mode. Post-LayerNorm blocks, as Google's and HuggingFace's.

    Inputs: `[token_ids, segment_ids]`, int32 `(batch, length)`. Positions
    whose token id is `pad_token_id` (0) are masked as attention keys, as
    Google and HuggingFace mask them; their own outputs are computed as
    usual and should be ignored. With `padding_mask=True` a third input,
    `padding_mask` `(batch, length)` (keras-hub's name and convention: 1
    keeps a token, 0 masks it; HuggingFace's `attention_mask`, Google's
    `input_mask`), gives the mask instead, and token ids no longer matter.
    The inputs may also be a dict keyed by these names.

    Outputs: a dict with `"sequence_output"` `(batch, length, hidden)`,
    `"pooled_output"` `(batch, hidden)` (tanh dense on the first token),
    and with `mlm=True` `"mlm_logits"` `(batch, length, vocab)` (the
    transform + LayerNorm of `cls/predictions`, then the transposed word
    embedding: tied weights, plus `output_bias`), with `nsp=True`
    `"nsp_logits"` `(batch, 2)`.

    Layer names: `token_embedding`, `segment_embedding`,
    `position_embedding`, `embeddings_norm`, then per block `l`
    `layer_{l}_attention` (its softmax holds the attention probabilities),
    `layer_{l}_attention_norm`, `layer_{l}_intermediate`,
    `layer_{l}_output`, `layer_{l}_output_norm`; `pooler`,
    `mlm_transform`, `mlm_norm`, `mlm_bias`, `nsp`.

    Args:
        config: a dict or the path of a `bert_config.json` / HuggingFace
            `config.json` (or the folder holding it); see
            `load_bert_config`.
        checkpoint: optional weights to load, any format
            `load_bert_weights` reads (Google TF1 checkpoint prefix,
            HuggingFace folder or `model.safetensors`), loaded strictly.
            Defaults to `None`.
        mlm: add the masked-language-model head. Defaults to `False`.
        nsp: add the next-sentence-prediction head. Defaults to `False`.
        hidden_act: overrides the config's `hidden_act`. Names follow
            HuggingFace: `"gelu"` is the exact erf GELU, `"gelu_new"` the
            tanh approximation (Google's `modeling.py` since Feb 2019),
            `"relu"`, `"silu"`, ...; `None` keeps the config's. Defaults to
            `None`.
        sequence_length: static input length, or None for any length up
            to `max_position_embeddings`. Defaults to `None`.
        name: the model's name. Defaults to `"bert"`.
        padding_mask: add the `padding_mask` input (1 = attend to the
            token, 0 = padding) and mask attention keys by it rather than by
            `pad_token_id`. Defaults to `False`.

    Returns:
        A `keras.Model`.

    Example:

    ```python
    config = {  # or the path of a bert_config.json / config.json
        "vocab_size": 100,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
    }
    model = keras_cool.models.build_bert(config, mlm=True)
    # Google's or HuggingFace's weights: checkpoint="bert_model.ckpt".
    token_ids = np.array([[2, 17, 42, 3, 0, 0]])
    segment_ids = np.zeros_like(token_ids)
    outputs = model.predict([token_ids, segment_ids], verbose=0)
    outputs["sequence_output"].shape  # (1, 6, 16)
    outputs["mlm_logits"].shape  # (1, 6, 100)
    ```

    Reference:
        Devlin et al., "BERT: Pre-training of Deep Bidirectional
        Transformers for Language Understanding" (2019),
        https://arxiv.org/abs/1810.04805; Su Jianlin, "自己实现了一个
        bert4keras" (2019), https://kexue.fm/archives/6915.
    """
    config = load_bert_config(config)
    if hidden_act is not None:
        config["hidden_act"] = hidden_act
    act = activation(config["hidden_act"])
    hidden = config["hidden_size"]
    init = keras.initializers.TruncatedNormal(
        stddev=config["initializer_range"]
    )
    if sequence_length is not None and not (
        0 < sequence_length <= config["max_position_embeddings"]
    ):
        raise ValueError(
            f"sequence_length={sequence_length} must be in [1, "
            f"max_position_embeddings={config['max_position_embeddings']}]."
        )

    token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    segment_ids = keras.Input(
        (sequence_length,), dtype="int32", name="segment_ids"
    )
    inputs = [token_ids, segment_ids]
    if padding_mask:
        inputs.append(
            keras.Input((sequence_length,), dtype="int32", name="padding_mask")
        )
        keep = ops.not_equal(inputs[-1], 0)
    else:
        keep = ops.not_equal(token_ids, config["pad_token_id"])
    # (batch, 1, length): padded keys masked; broadcast over the queries.
    mask = ops.expand_dims(keep, 1)

    word_embedding = keras.layers.ReversibleEmbedding(
        config["vocab_size"],
        hidden,
        embeddings_initializer=init,
        name="token_embedding",
    )
    x = word_embedding(token_ids)
    segments = keras.layers.Embedding(
        config["type_vocab_size"],
        hidden,
        embeddings_initializer=init,
        name="segment_embedding",
    )(segment_ids)
    x = keras.layers.Add(name="embeddings_add")([x, segments])
    x = PositionEmbedding(
        config["max_position_embeddings"],
        initializer=init,
        name="position_embedding",
    )(x)
    x = _norm("embeddings_norm", config)(x)
    x = keras.layers.Dropout(
        config["hidden_dropout_prob"], name="embeddings_dropout"
    )(x)
    for index in range(config["num_hidden_layers"]):
        x = _encoder_layer(x, mask, index, config, act)
    outputs = {
        "sequence_output": x,
        "pooled_output": _dense(hidden, "pooler", config, "tanh")(x[:, 0, :]),
    }
    if mlm:
        h = _dense(hidden, "mlm_transform", config, act)(x)
        h = _norm("mlm_norm", config)(h)
        logits = word_embedding(h, reverse=True)
        outputs["mlm_logits"] = BiasAdd(name="mlm_bias")(logits)
    if nsp:
        outputs["nsp_logits"] = _dense(2, "nsp", config)(
            outputs["pooled_output"]
        )
    model = keras.Model(inputs, outputs, name=name)
    if checkpoint is not None:
        load_bert_weights(model, checkpoint)
    return model
