"""
Title: Reading a Transformer's attention maps with `OutputCapture`
Description: Train a small Transformer on a pointer task, then read the
    attention probabilities of every layer in one compiled, batched pass.
What you will see: the attention mass the read-out query puts on the
    pointed-at position in each layer, against the uniform 1/length, the
    test accuracy, and a PNG of head-averaged attention maps with the
    tokens on both axes.

Task (made by the script): a sequence starts with a pointer token that
names a position k; the label is the token found at position k. Solving
it requires the read-out position (the pointer, position 0) to attend to
position k, so its attention should concentrate there.

    python examples/attention_capture.py
    python examples/attention_capture.py --quick   # a smoke run
"""

import argparse
import os

import keras
import numpy as np
from _cli import HelpFormatter
from _cli import add_quick_argument
from _cli import print_result
from _cli import quick_output_dir
from _plots import attention_maps

import keras_cool

# ## Settings
#
# `--help` lists every option with its default. `--quick` is the smoke run
# the tests use, written to `outputs/attention_capture/quick/`.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    add_quick_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (None: 20; 1 with --quick)",
    )
    parser.add_argument(
        "--output-dir",
        default=os.path.join("outputs", "attention_capture"),
        help="where attention_maps.png goes",
    )
    return quick_output_dir(parser.parse_args(argv))


# ## The data: a pointer task
#
# Tokens 1..length are random symbols from a vocabulary of `vocab`; token 0
# is `vocab + k - 1`, a symbol of its own that points at position k. The
# label is the symbol at position k.


def make_data(n, length, vocab, rng):
    """Token 0 is `vocab + k - 1`; the label is the token at position k."""
    tokens = rng.integers(0, vocab, size=(n, length + 1))
    pointer = rng.integers(1, length + 1, size=n)
    tokens[:, 0] = vocab + pointer - 1
    labels = tokens[np.arange(n), pointer]
    return tokens.astype("int32"), labels.astype("int32"), pointer


# ## The model: a small Transformer encoder
#
# Token and learned position embeddings, `blocks` post-norm blocks of
# `keras.layers.MultiHeadAttention` and a feed-forward layer, then a
# classifier on the read-out position 0. The attention layers are named
# `block_{i}_attention`, which names the captured maps.


@keras.saving.register_keras_serializable(package="attention_capture")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a (batch, length, dim) input."""

    def build(self, input_shape):
        self.positions = self.add_weight(
            shape=tuple(input_shape[1:]), initializer="random_normal"
        )

    def call(self, x):
        return x + self.positions


def build_model(length, vocab, dim, blocks, heads):
    inputs = keras.Input((length + 1,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(vocab + length, dim, name="embed")(inputs)
    h = PositionEmbedding(name="position")(h)
    for i in range(blocks):
        attention = keras.layers.MultiHeadAttention(
            heads, dim // heads, name=f"block_{i}_attention"
        )
        h = keras.layers.LayerNormalization(name=f"block_{i}_norm1")(
            h + attention(h, h)
        )
        ffn = keras.layers.Dense(2 * dim, activation="relu")(h)
        h = keras.layers.LayerNormalization(name=f"block_{i}_norm2")(
            h + keras.layers.Dense(dim)(ffn)
        )
    h = keras.layers.Cropping1D((0, length), name="read_out")(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(vocab, activation="softmax")(h)
    return keras.Model(inputs, outputs, name="pointer_transformer")


# ## Training


def train(model, x, y, epochs):
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)


# ## Capturing the attention maps
#
# The target `keras.layers.Softmax` (a class) captures the `Softmax` layer
# inside every `MultiHeadAttention`, whatever the layers are named; its
# output is the attention probabilities, shaped (batch, heads, query, key).
# `capture.predict` returns them, with the model's own `outputs`, from one
# compiled pass over the test set. For each layer we average over heads,
# keep the read-out query (row 0), and measure the mass it puts on the
# pointed-at key.


def attention_focus(arrays, pointer, uniform):
    keys = sorted(k for k in arrays if k != "outputs")
    print("captured:", {k: arrays[k].shape for k in keys})
    focus = []
    for key in keys:
        rows = arrays[key].mean(axis=1)[:, 0, :]  # heads, read-out query
        mass = float(rows[np.arange(len(rows)), pointer].mean())
        focus.append(mass)
        print(
            f"{key}: attention of the read-out query on the pointed-at "
            f"position = {mass:.3f} (uniform {uniform:.3f})"
        )
    return keys, focus


# ## Looking at the outputs
#
# Head-averaged attention of 4 test sequences in each layer, query down
# and key across, with the tokens on both axes: `→k` is the pointer to
# position k, the letters are the symbols. A red box marks the read-out
# query and the pointed-at key.


def token_names(tokens, vocab):
    """Symbols as letters, the pointer token as `→k`."""
    return [
        chr(ord("A") + t) if t < vocab else f"→{t - vocab + 1}" for t in tokens
    ]


def save_heatmaps(arrays, keys, x_test, pointer, vocab, output_dir, shown=4):
    maps, tokens, titles, boxes = [], [], [], []
    for layer, key in enumerate(keys):
        for i in range(shown):
            maps.append(arrays[key][i].mean(axis=0))  # average the heads
            names = token_names(x_test[i], vocab)
            tokens.append(names)
            label = names[pointer[i]]
            titles.append(f"layer {layer}, sequence {i} (label {label})")
            boxes.append((0, pointer[i]))
    path = attention_maps(
        maps,
        tokens,
        os.path.join(output_dir, "attention_maps.png"),
        "Head-averaged attention, one row per layer "
        "(red box: read-out query, pointed-at key)",
        titles,
        cols=shown,
        boxes=boxes,
    )
    print(
        f"wrote {path}: one row of {shown} test sequences per layer, "
        "head-averaged attention (query down, key across), red box: the "
        "read-out query and the pointed-at key"
    )


# ## Putting it together


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    length, vocab = 10, 8
    n_train, n_test = (256, 200) if args.quick else (8000, 1000)
    epochs = args.epochs or (1 if args.quick else 20)
    x, y, _ = make_data(n_train, length, vocab, rng)
    x_test, y_test, pointer = make_data(n_test, length, vocab, rng)

    model = build_model(length, vocab, dim=32, blocks=2, heads=2)
    train(model, x, y, epochs)

    capture = keras_cool.OutputCapture(model, keras.layers.Softmax)
    arrays = capture.predict(x_test, batch_size=200)
    uniform = 1.0 / (length + 1)
    keys, focus = attention_focus(arrays, pointer, uniform)
    # The capture pass also returns the model's own outputs.
    accuracy = float((arrays["outputs"].argmax(-1) == y_test).mean())
    if not args.quick:
        plain = model.predict(x_test, batch_size=200, verbose=0)
        same = np.allclose(arrays["outputs"], plain, atol=1e-5)
        print(f"outputs of the capture pass equal model.predict: {same}")

    save_heatmaps(arrays, keys, x_test, pointer, vocab, args.output_dir)
    best = int(np.argmax(focus))
    print_result(
        args,
        f"accuracy={accuracy:.3f} focus={focus[best]:.3f} "
        f"focus_layer={best} uniform={uniform:.3f}",
    )


if __name__ == "__main__":
    main()
