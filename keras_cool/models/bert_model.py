"""`build_bert`: a BERT encoder as a Functional model of stock layers."""

import keras
from keras import ops

from keras_cool.layers.bias_add import BiasAdd
from keras_cool.layers.position_embedding import PositionEmbedding
from keras_cool.models._activations import activation
from keras_cool.models._bert_attention import BertAttention
from keras_cool.models._families import FAMILIES
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


def _encoder_block(index, config, act, sequence_length):
    """Block `index` as a Functional model named `layer_{index}`:
    `[x, keep] -> x`, `keep` the `(batch, length)` boolean key mask.

    A model of its own so that eager backends (torch) free the block's
    intermediate tensors when it returns: a Functional model holds every
    node's output until its own call ends. ALBERT calls one block at
    every layer (shared weights)."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    dropout = config["hidden_dropout_prob"]
    init = keras.initializers.TruncatedNormal(
        stddev=config["initializer_range"]
    )
    x = inputs = keras.Input((sequence_length, hidden), name="hidden")
    keep = keras.Input((sequence_length,), dtype="bool", name="keep")
    # (batch, 1, length): padded keys masked; broadcast over the queries.
    mask = ops.expand_dims(keep, 1)
    h = BertAttention(
        heads,
        hidden // heads,
        dropout=config["attention_probs_dropout_prob"],
        kernel_initializer=init,
        name="attention",
    )(x, x, attention_mask=mask)
    h = keras.layers.Dropout(dropout, name="attention_dropout")(h)
    x = keras.layers.Add(name="attention_add")([x, h])
    x = _norm("attention_norm", config)(x)
    h = _dense(config["intermediate_size"], "intermediate", config, act)(x)
    h = _dense(hidden, "output", config)(h)
    h = keras.layers.Dropout(dropout, name="output_dropout")(h)
    x = keras.layers.Add(name="output_add")([x, h])
    x = _norm("output_norm", config)(x)
    return keras.Model([inputs, keep], x, name=f"layer_{index}")


def _check_family(config, family, pooler, heads):
    """Whether to build a pooler; refuses what the family lacks."""
    model_type = config["model_type"]
    for head, wanted in heads.items():
        if wanted and head not in family["heads"]:
            has = [f"{h}=True" for h in family["heads"]]
            raise ValueError(
                f"{head}=True: model_type={model_type!r} checkpoints carry "
                f"no such head; it takes {' and '.join(has)}. Pass "
                f"{head}=False."
            )
    if pooler is None:
        pooler = family["pooler"] == "default"
    elif pooler and family["pooler"] == "none":
        raise ValueError(
            f"pooler=True: model_type={model_type!r} has no pooler (its "
            "checkpoints hold none); pass pooler=None or False."
        )
    if heads["nsp"] and not pooler:
        raise ValueError(
            "nsp=True reads the pooled output: pass pooler=None or True."
        )
    return bool(pooler)


def _embeddings(inputs, config, family, word_embedding, init):
    """Token (+ segment) + position embeddings, LayerNorm, dropout, and
    ELECTRA's projection to the hidden size."""
    token_ids = inputs[0]
    size = word_embedding.output_dim
    x = word_embedding(token_ids)
    if family["positions"] != "after_padding":
        x = PositionEmbedding(
            config["max_position_embeddings"],
            initializer=init,
            name="position_embedding",
        )(x)
    if family["token_types"]:
        segments = keras.layers.Embedding(
            config["type_vocab_size"],
            size,
            embeddings_initializer=init,
            name="segment_embedding",
        )(inputs[1])
        x = keras.layers.Add(name="embeddings_add")([x, segments])
    if family["positions"] == "after_padding":
        # RoBERTa: pad_token_id + 1 + the non-pad tokens so far; pads
        # take pad_token_id (as HF's create_position_ids_from_input_ids).
        pad = config["pad_token_id"]
        real = ops.cast(ops.not_equal(token_ids, pad), "int32")
        position_ids = ops.cumsum(real, axis=1) * real + pad
        positions = keras.layers.Embedding(
            config["max_position_embeddings"],
            size,
            embeddings_initializer=init,
            name="position_embedding",
        )(position_ids)
        x = keras.layers.Add(name="positions_add")([x, positions])
    x = _norm("embeddings_norm", config)(x)
    x = keras.layers.Dropout(
        config["hidden_dropout_prob"], name="embeddings_dropout"
    )(x)
    if size != config["hidden_size"] or family["project"] == "always":
        x = _dense(config["hidden_size"], "embeddings_project", config)(x)
    return x


def build_bert(
    config,
    checkpoint=None,
    mlm=False,
    nsp=False,
    hidden_act=None,
    sequence_length=None,
    name="bert",
    padding_mask=False,
    pooler=None,
    discriminator=False,
):
    """Builds BERT (Devlin et al.) from its config, optionally loaded.

    A Functional `keras.Model` of stock Keras layers (`Embedding`,
    `ReversibleEmbedding`, `LayerNormalization`, `Dense`, `Dropout`,
    `Add`), one Functional model per encoder block, and registered
    keras_cool layers (`PositionEmbedding`, `BiasAdd`, and
    `MultiHeadAttention` that runs the fused
    `keras.ops.dot_product_attention` at inference on torch), so it saves to
    `.keras` and loads in safe mode. Post-LayerNorm blocks, as Google's
    and HuggingFace's.

    Inputs: `[token_ids, segment_ids]`, int32 `(batch, length)`. Positions
    whose token id is `pad_token_id` (0) are masked as attention keys, as
    Google and HuggingFace mask them; their own outputs are computed as
    usual and should be ignored. With `padding_mask=True` a third input,
    `padding_mask` `(batch, length)` (keras-hub's name and convention: 1
    keeps a token, 0 masks it; HuggingFace's `attention_mask`, Google's
    `input_mask`), gives the mask instead, and token ids no longer matter.
    The inputs may also be a dict keyed by these names.

    Other encoder families, chosen by the HuggingFace `config.json`'s
    `model_type`, share this encoder: `"roberta"`, `"xlm-roberta"`,
    `"camembert"` (positions count from `pad_token_id + 1` over the
    non-pad token ids, as HF's; one token type; a pooler only with
    `pooler=True`), `"distilbert"` (no `segment_ids` input, no pooler),
    `"electra"`, the discriminator (embeddings of `embedding_size`,
    projected to the hidden size by `embeddings_project`; no pooler) and
    `"albert"` (embeddings of `embedding_size` projected by
    `embeddings_project`; one block, `layer_0`, called
    `num_hidden_layers` times: cross-layer shared weights;
    `num_hidden_groups` and `inner_group_num` other than 1 raise).
    `build_bert(folder)` then `load_bert_weights(model, folder)` loads
    their safetensors, with the pre-training heads the checkpoint carries:
    `mlm=True` for BERT, RoBERTa / XLM-R (`lm_head`, erf GELU), DistilBERT
    (`vocab_transform`, `vocab_layer_norm`, `vocab_projector`) and ALBERT
    (`predictions`, transform to `embedding_size`) and an ELECTRA
    generator (`generator_predictions`, `generator_lm_head`, erf GELU);
    `nsp=True` for BERT and ALBERT (its sentence-order head,
    `sop_classifier`); `discriminator=True` for an ELECTRA discriminator.
    Other combinations raise.

    Outputs: a dict with `"sequence_output"` `(batch, length, hidden)`,
    `"pooled_output"` `(batch, hidden)` (tanh dense on the first token;
    where the model has a pooler),
    and with `mlm=True` `"mlm_logits"` `(batch, length, vocab)` (the
    transform + LayerNorm of `cls/predictions`, then the transposed word
    embedding: tied weights, plus `output_bias`), with `nsp=True`
    `"nsp_logits"` `(batch, 2)`, with `discriminator=True`
    `"discriminator_logits"` `(batch, length)` (ELECTRA's replaced-token
    logits, before the sigmoid).

    Layer names: `token_embedding`, `segment_embedding`,
    `position_embedding`, `embeddings_norm`, then per block `l` a
    Functional model `layer_{l}` holding `attention` (its softmax holds
    the attention probabilities: `OutputCapture(model,
    "layer_*/attention/softmax*")`), `attention_norm`, `intermediate`,
    `output`, `output_norm` (`model.get_layer("layer_0").get_layer(
    "intermediate")`); `embeddings_project`
    (ELECTRA, ALBERT); `pooler`, `mlm_transform`, `mlm_norm`, `mlm_bias`,
    `nsp`, `discriminator_dense`, `discriminator_prediction`.

    Args:
        config: a dict or the path of a `bert_config.json` / HuggingFace
            `config.json` (or the folder holding it); see
            `load_bert_config`.
        checkpoint: optional weights to load, any format
            `load_bert_weights` reads (Google TF1 checkpoint prefix,
            HuggingFace folder or `model.safetensors`), loaded strictly.
            Defaults to `None`.
        mlm: add the masked-language-model head (BERT, RoBERTa / XLM-R,
            DistilBERT, ALBERT, ELECTRA's generator). Defaults to `False`.
        nsp: add the next-sentence-prediction head (BERT; ALBERT's
            sentence-order head). Needs the pooler. Defaults to `False`.
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
        pooler: build the pooler (`"pooled_output"`). `None` follows the
            family: BERT has one; RoBERTa / XLM-R only with `True` (it was
            pretrained without one and `roberta-base` ships none);
            DistilBERT and ELECTRA have none (`True` raises). Defaults to
            `None`.
        discriminator: add ELECTRA's discriminator head (dense,
            `hidden_act`, dense to one logit per token). Defaults to
            `False`.

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
    family = FAMILIES[config["model_type"]]
    heads = {"mlm": mlm, "nsp": nsp, "discriminator": discriminator}
    pooler = _check_family(config, family, pooler, heads)
    if hidden_act is not None:
        config["hidden_act"] = hidden_act
    act = activation(config["hidden_act"])
    hidden = config["hidden_size"]
    init = keras.initializers.TruncatedNormal(
        stddev=config["initializer_range"]
    )
    longest = config["max_position_embeddings"]
    if family["positions"] == "after_padding":
        longest -= config["pad_token_id"] + 1
    if sequence_length is not None and not 0 < sequence_length <= longest:
        raise ValueError(
            f"sequence_length={sequence_length} must be in [1, {longest}] "
            f"(max_position_embeddings={config['max_position_embeddings']}"
            + (
                f", less pad_token_id + 1 for {config['model_type']}"
                if longest != config["max_position_embeddings"]
                else ""
            )
            + ")."
        )
    word_embedding = keras.layers.ReversibleEmbedding(
        config["vocab_size"],
        config.get("embedding_size") or hidden,
        embeddings_initializer=init,
        name="token_embedding",
    )

    token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    inputs = [token_ids]
    if family["token_types"]:
        segment_ids = keras.Input(
            (sequence_length,), dtype="int32", name="segment_ids"
        )
        inputs.append(segment_ids)
    if padding_mask:
        inputs.append(
            keras.Input((sequence_length,), dtype="int32", name="padding_mask")
        )
        keep = ops.not_equal(inputs[-1], 0)
    else:
        keep = ops.not_equal(token_ids, config["pad_token_id"])
    x = _embeddings(inputs, config, family, word_embedding, init)
    layers = config["num_hidden_layers"]
    if family["shared_layers"]:  # ALBERT: one block, called every layer
        blocks = [_encoder_block(0, config, act, sequence_length)] * layers
    else:
        blocks = [
            _encoder_block(i, config, act, sequence_length)
            for i in range(layers)
        ]
    for block in blocks:
        x = block([x, keep])
    outputs = {"sequence_output": x}
    if pooler:
        pooled = _dense(hidden, "pooler", config, "tanh")(x[:, 0, :])
        outputs["pooled_output"] = pooled
    if mlm:
        # To the word embedding's size (ALBERT's is narrower), then tied.
        mlm_act = act
        if family["mlm_act"] is not None:
            mlm_act = activation(family["mlm_act"])
        h = _dense(word_embedding.output_dim, "mlm_transform", config, mlm_act)(
            x
        )
        h = _norm("mlm_norm", config)(h)
        logits = word_embedding(h, reverse=True)
        outputs["mlm_logits"] = BiasAdd(name="mlm_bias")(logits)
    if nsp:
        outputs["nsp_logits"] = _dense(2, "nsp", config)(
            outputs["pooled_output"]
        )
    if discriminator:
        h = _dense(hidden, "discriminator_dense", config, act)(x)
        h = _dense(1, "discriminator_prediction", config)(h)
        outputs["discriminator_logits"] = ops.squeeze(h, axis=-1)
    model = keras.Model(inputs, outputs, name=name)
    if checkpoint is not None:
        load_bert_weights(model, checkpoint)
    return model
