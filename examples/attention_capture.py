"""
Title: Reading a Transformer's attention maps with `OutputCapture`
Description: Train a small Transformer on a pointer task, then read the
    attention probabilities of every layer in one compiled, batched pass.
What you will see: the attention mass the read-out query puts on the
    pointed-at position in each layer, against the uniform 1/length, the
    test accuracy, and a PNG of head-averaged attention maps.

Task (made by the script): a sequence starts with a pointer token that
names a position k; the label is the token found at position k. Solving
it requires the read-out position (the pointer, position 0) to attend to
position k, so its attention should concentrate there.

    python examples/attention_capture.py [--quick] [--seed 0]
"""

import argparse
import os

import keras
import numpy as np

import keras_cool

# ## Settings


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--output-dir", default=os.path.join("outputs", "attention_capture")
    )
    return parser.parse_args()


# ## The data: a pointer task
#
# Tokens 1..length are random symbols from a vocabulary of `vocab`; token 0
# is `vocab + k - 1`, a symbol of its own that points at position k. The
# label is the symbol at position k.


def make_data(n, length, vocab, rng):
    """Token 0 is `vocab + k`; the label is the token at position k."""
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
# `block_{i}_attention` so that `OutputCapture` can find them by pattern.


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
# The pattern `block_*_attention/softmax*` names the `Softmax` layer inside
# each `MultiHeadAttention`, whose output is the attention probabilities,
# shaped (batch, heads, query, key). `capture.predict` returns them, with
# the model's own `outputs`, from one compiled pass over the test set.
# For each layer we average over heads, keep the read-out query (row 0),
# and measure the mass it puts on the pointed-at key.


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
# One row of 8 test sequences per layer: head-averaged attention with the
# query down and the key across; a red box marks the read-out query and
# the pointed-at key.


def heatmaps(maps, pointer, scale):
    """(n, L, L) head-averaged maps -> RGB tiles, target cells outlined."""
    images = []
    for attention, k in zip(maps, pointer):
        low, high = attention.min(), attention.max()
        gray = (attention - low) / max(high - low, 1e-9)
        image = np.repeat(np.repeat(gray, scale, 0), scale, 1)
        image = np.stack([image] * 3, axis=-1)
        # Outline the cell (query 0, key k) in red.
        cell = image[:scale, k * scale : (k + 1) * scale]
        cell[[0, -1], :] = (1.0, 0.0, 0.0)
        cell[:, [0, -1]] = (1.0, 0.0, 0.0)
        images.append(image)
    return np.stack(images)


def save_heatmaps(arrays, keys, pointer, output_dir):
    os.makedirs(output_dir, exist_ok=True)
    tiles = [
        heatmaps(arrays[k][:8].mean(axis=1), pointer[:8], 12) for k in keys
    ]
    grid = keras_cool.utils.tile_images(
        np.concatenate(tiles), rows=len(keys), padding=2
    )
    path = os.path.join(output_dir, "attention_maps.png")
    keras_cool.utils.save_png(grid, path)
    print(
        f"wrote {path}: one row of 8 test sequences per layer, head-averaged "
        "attention (query down, key across), red box: the read-out query "
        "and the pointed-at key"
    )


# ## Putting it together


def main():
    args = parse_args()
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    length, vocab = 10, 8
    n_train, n_test = (256, 200) if args.quick else (8000, 1000)
    epochs = args.epochs or (1 if args.quick else 20)
    x, y, _ = make_data(n_train, length, vocab, rng)
    x_test, y_test, pointer = make_data(n_test, length, vocab, rng)

    model = build_model(length, vocab, dim=32, blocks=2, heads=2)
    train(model, x, y, epochs)

    capture = keras_cool.OutputCapture(model, "block_*_attention/softmax*")
    arrays = capture.predict(x_test, batch_size=200)
    uniform = 1.0 / (length + 1)
    keys, focus = attention_focus(arrays, pointer, uniform)
    # The capture pass also returns the model's own outputs.
    accuracy = float((arrays["outputs"].argmax(-1) == y_test).mean())
    if not args.quick:
        plain = model.predict(x_test, batch_size=200, verbose=0)
        same = np.allclose(arrays["outputs"], plain, atol=1e-5)
        print(f"outputs of the capture pass equal model.predict: {same}")

    save_heatmaps(arrays, keys, pointer, args.output_dir)
    best = int(np.argmax(focus))
    print(
        f"RESULT accuracy={accuracy:.3f} focus={focus[best]:.3f} "
        f"focus_layer={best} uniform={uniform:.3f}"
    )


if __name__ == "__main__":
    main()
