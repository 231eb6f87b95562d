"""
Title: BERT attention maps and a quick fine-tune, on stock Keras layers
Description: Load a BERT checkpoint with `keras_cool.models`, read the
    attention probabilities of every head of one layer with
    `keras_cool.OutputCapture`, then fine-tune a classification head with
    the `PiecewiseLinear` schedule.
What you will see: the tokens of a sentence pair, the token each head's
    [CLS] query attends to most, a PNG of every head's attention map with
    the tokens on both axes, and the fine-tuning loss going down.

In the bert4keras spirit: `keras_cool.models.build_bert` loads Google's
original TF1 checkpoint `bert_model.ckpt` or a HuggingFace folder /
`model.safetensors` (the format is detected), `BertTokenizer` encodes a
sentence pair, and `OutputCapture` reads the `Softmax` inside each
`keras.layers.MultiHeadAttention`. The fine-tuning trains a small
classification head on the pooled output (the encoder frozen;
`--fine-tune-encoder` trains it too) with bert4keras's
`piecewise_linear` schedule: linear warmup, then linear decay. The toy
task: does the first sentence of a pair speak of a cat?

With no `--checkpoint` it runs offline on the repository's tiny test
checkpoint (2 layers, hidden 32, random weights, 97-token vocabulary):
its Google TF1 files when TensorFlow is installed, else its safetensors
twin. The attention maps of random weights mean nothing; with a real
checkpoint (e.g. Google's `uncased_L-12_H-768_A-12`) they show the usual
patterns ([SEP]-attending heads, previous/next-token heads).

    python examples/bert_attention.py
    python examples/bert_attention.py --checkpoint PATH/bert_model.ckpt
    python examples/bert_attention.py --quick      # a smoke run
"""

import argparse
import importlib.util
import os
import pathlib

import keras
import numpy as np
from _cli import HelpFormatter
from _cli import add_quick_argument
from _cli import print_result
from _cli import quick_output_dir
from _plots import attention_maps as plot_attention

import keras_cool
from keras_cool.models import BertTokenizer
from keras_cool.models import build_bert
from keras_cool.optimizers.schedules import PiecewiseLinear

TINY = pathlib.Path(__file__).parent.parent / "tests/models/fixtures/tiny_bert"
ANIMALS = ["cat", "dog", "bird"]
PLACES = ["mat", "park", "sun"]
VERBS = ["sat", "ran", "play"]


# ## Settings
#
# `--help` lists every option with its default. `--quick` is the smoke run
# the tests use, written to `outputs/bert_attention/quick/`.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="Google checkpoint prefix (.../bert_model.ckpt), HuggingFace "
        "folder or model.safetensors; None: the tiny test checkpoint",
    )
    parser.add_argument(
        "--vocab",
        default=None,
        help="vocab.txt; None: the one next to the checkpoint",
    )
    parser.add_argument(
        "--cased", action="store_true", help="a cased checkpoint"
    )
    parser.add_argument(
        "--layer", type=int, default=-1, help="layer to show (-1: last)"
    )
    parser.add_argument(
        "--fine-tune-encoder",
        action="store_true",
        help="train the encoder too (else only the classification head)",
    )
    add_quick_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--output-dir",
        default=os.path.join("outputs", "bert_attention"),
        help="where the attention PNG goes",
    )
    return quick_output_dir(parser.parse_args(argv))


def default_checkpoint():
    if importlib.util.find_spec("tensorflow") is not None:
        return TINY / "bert_model.ckpt"
    return TINY / "hf"  # the same weights, read without TensorFlow


def find_vocab(checkpoint):
    folder = pathlib.Path(checkpoint)
    folder = folder if folder.is_dir() else folder.parent
    for candidate in (folder / "vocab.txt", folder.parent / "vocab.txt"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"No vocab.txt near {checkpoint}: pass --vocab.")


# ## The data
#
# One sentence pair to look at, and a small labelled set of pairs for the
# fine-tuning.


def pair_data(n, rng):
    """Pairs "the X sat on the mat" / "a Y ran to the park"; label X == cat."""
    firsts, seconds, labels = [], [], []
    for _ in range(n):
        a = ANIMALS[rng.integers(3)]
        same = rng.random() < 0.5
        b = a if same else ANIMALS[(ANIMALS.index(a) + rng.integers(1, 3)) % 3]
        firsts.append(f"the {a} {VERBS[rng.integers(3)]} on the")
        firsts[-1] += f" {PLACES[rng.integers(3)]}."
        seconds.append(f"a {b} {VERBS[rng.integers(3)]} to the park!")
        labels.append(int(a == "cat"))
    return firsts, seconds, np.array(labels, "int32")


# ## The model
#
# The encoder comes from `build_bert` (in `main`); the classifier is a
# dropout and a Dense layer on its pooled output.


def classifier(bert, dropout=0.1):
    pooled = bert.output["pooled_output"]
    hidden = keras.layers.Dropout(dropout, name="classifier_dropout")(pooled)
    logits = keras.layers.Dense(2, name="classifier")(hidden)
    return keras.Model(bert.inputs, logits, name="bert_classifier")


# ## Attention maps
#
# `OutputCapture` with the pattern `layer_{i}/attention/softmax*` returns
# the attention probabilities of layer i, shaped (batch, heads, query,
# key), from one compiled pass.


def attention_maps(bert, token_ids, segment_ids, layer):
    capture = keras_cool.OutputCapture(
        bert, f"layer_{layer}/attention/softmax*"
    )
    arrays = capture.predict([token_ids, segment_ids], batch_size=1)
    (key,) = [k for k in arrays if k != "outputs"]
    return arrays[key][0]  # (heads, query, key)


def save_attention(maps, tokens, layer, path, random_weights):
    """Every head's map, query down, key across, tokens on both axes."""
    note = " (random weights: the tiny test checkpoint)"
    return plot_attention(
        list(maps),
        tokens,
        path,
        f"BERT layer {layer}, every head{note if random_weights else ''}",
        [f"head {h}" for h in range(len(maps))],
        cols=4,
    )


# ## Fine-tuning
#
# A classification head on the pooled output, trained with the
# `PiecewiseLinear` schedule: warmup over the first quarter of the steps to
# the base learning rate, then linear decay to 10 % of it.


def fine_tune(bert, tokenizer, rng, args):
    n, epochs, batch = (96, 6, 16) if args.quick else (1024, 4, 32)
    firsts, seconds, labels = pair_data(n, rng)
    longest = bert.get_layer("position_embedding").sequence_length
    x = list(tokenizer.encode_batch(firsts, seconds, length=min(24, longest)))
    steps = epochs * (n // batch)
    schedule = PiecewiseLinear(
        {steps // 4: 1.0, steps: 0.1},
        base_learning_rate=3e-4 if args.fine_tune_encoder else 1e-2,
    )
    bert.trainable = args.fine_tune_encoder
    model = classifier(bert)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    before = model.evaluate(x, labels, batch_size=batch, verbose=0)[0]
    print(f"before fine-tuning: loss {before:.4f}")
    history = model.fit(
        x, labels, batch_size=batch, epochs=epochs, verbose=0, shuffle=True
    )
    for epoch, loss in enumerate(history.history["loss"]):
        accuracy = history.history["accuracy"][epoch]
        print(f"epoch {epoch}: loss {loss:.4f} accuracy {accuracy:.3f}")
    after, accuracy = model.evaluate(x, labels, batch_size=batch, verbose=0)
    print(f"after fine-tuning: loss {after:.4f} accuracy {accuracy:.3f}")
    final_lr = float(keras.ops.convert_to_numpy(schedule(steps)))
    print(f"learning rate: warmup {steps // 4} steps, {final_lr:.1e} at end")
    return before, after, accuracy


# ## Putting it together
#
# Tokenize the pair, load the encoder (the format is detected), read and
# draw one layer's attention, then fine-tune.


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    checkpoint = args.checkpoint or default_checkpoint()
    vocab = args.vocab or find_vocab(checkpoint)
    print(f"backend={keras.backend.backend()} checkpoint={checkpoint}")

    tokenizer = BertTokenizer(vocab, lowercase=not args.cased)
    first, second = "The cat sat on the mat.", "A dog ran to the park!"
    token_ids, segment_ids = tokenizer.encode(first, second)
    tokens = [tokenizer.id_to_token(i) for i in token_ids]
    print("tokens:", " ".join(tokens))

    config = keras_cool.models.load_bert_config(checkpoint)
    bert = build_bert(config, checkpoint=checkpoint)
    layer = args.layer % config["num_hidden_layers"]

    maps = attention_maps(bert, token_ids[None], segment_ids[None], layer)
    heads, length = maps.shape[0], len(tokens)
    rows = np.abs(maps.sum(-1) - 1.0).max()
    print(f"layer {layer}: {heads} heads, rows sum to 1 within {rows:.1e}")
    for h in range(heads):
        top = maps[h, 0].argmax()
        print(f"  head {h}: [CLS] attends most to {tokens[top]!r}")
    png = os.path.join(args.output_dir, f"attention_layer_{layer}.png")
    save_attention(
        maps[:, :length, :length],
        tokens,
        layer,
        png,
        random_weights=args.checkpoint is None,
    )
    print(f"wrote {png}: one map per head, query down, key across")

    before, after, accuracy = fine_tune(bert, tokenizer, rng, args)
    print_result(
        args,
        f"layer={layer} heads={heads} tokens={length} "
        f"loss_before={before:.4f} loss_after={after:.4f} "
        f"accuracy={accuracy:.3f} png={png}",
    )


if __name__ == "__main__":
    main()
