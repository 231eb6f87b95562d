"""Overhead of `OutputCapture.predict` over plain `model.predict`.

A small Transformer encoder (2 blocks of `keras.layers.MultiHeadAttention`
+ feed-forward) runs on the same data with `model.predict` and with
`OutputCapture(model, "*softmax*").predict`, which also returns every
attention-probability tensor, and with a hand-written twin Functional
model on the same layers that returns the scores
(`return_attention_scores=True`), the best one can do by hand. Calls
are interleaved (rotating order) and repeated; medians are reported.
The ratio grows with the size of what is captured relative to the
compute: here 2 x (batch, 4, 32, 32) attention maps for a 128-wide model.
The capture is also checked for
retracing: its internal `call` counts how often Python runs it (on
TensorFlow and JAX only while tracing; torch predicts eagerly, so there
every batch runs Python and "traces" do not apply).

Last line: `capture_overhead: ratio=R (capture=... s, predict=... s,
traces=N, retraces=M)`, R = capture time / predict time.

Run: python benchmarks/capture_overhead.py [--quick] [--repeats 7]
"""

import argparse

import keras
import numpy as np
from _timing import interleaved
from _timing import medians
from _timing import minimums
from _timing import print_times
from _timing import ratio_line

import keras_cool


def build_models(length, vocab, dim, blocks, heads):
    """The model, and a twin on the same layers that outputs the scores.

    The twin is what one writes by hand for a Functional model (calling
    each attention layer with `return_attention_scores=True`): the best
    case for reading attention maps, to separate the cost of returning
    the maps from the cost of the capture mechanism.
    """
    embed = keras.layers.Embedding(vocab, dim)
    layers = []
    for _ in range(blocks):
        layers.append(
            [
                keras.layers.MultiHeadAttention(heads, dim // heads),
                keras.layers.LayerNormalization(),
                keras.layers.Dense(4 * dim, activation="relu"),
                keras.layers.Dense(dim),
                keras.layers.LayerNormalization(),
            ]
        )
    pool = keras.layers.GlobalAveragePooling1D()
    head = keras.layers.Dense(2)

    def graph(with_scores):
        inputs = keras.Input((length,), dtype="int32")
        h, scores = embed(inputs), []
        for attention, norm1, ffn1, ffn2, norm2 in layers:
            if with_scores:
                a, s = attention(h, h, return_attention_scores=True)
                scores.append(s)
            else:
                a = attention(h, h)
            h = norm1(h + a)
            h = norm2(h + ffn2(ffn1(h)))
        outputs = head(pool(h))
        return keras.Model(inputs, [outputs] + scores if scores else outputs)

    twin = graph(True)  # first: the scores are a second output of the node
    return graph(False), twin


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    if args.quick:
        n, length, dim, batch, repeats = 256, 16, 32, 64, 2
    else:
        n, length, dim, batch, repeats = 2048, 32, 128, 256, 9
    repeats = args.repeats or repeats
    vocab = 100
    x = np.random.default_rng(args.seed).integers(0, vocab, (n, length))
    blocks = 1 if args.quick else 2
    model, twin = build_models(length, vocab, dim, blocks=blocks, heads=4)
    capture = keras_cool.OutputCapture(model, "*softmax*")

    # First calls compile; they are not timed.
    plain = model.predict(x, batch_size=batch, verbose=0)
    captured = capture.predict(x, batch_size=batch)
    by_hand = twin.predict(x, batch_size=batch, verbose=0)
    first_traces = capture.trace_count
    np.testing.assert_allclose(captured["outputs"], plain, 1e-4, 1e-4)
    maps = [v for k, v in sorted(captured.items()) if k != "outputs"]
    for got, want in zip(maps, by_hand[1:]):
        np.testing.assert_allclose(got, want, 1e-4, 1e-5)
    shapes = {k: v.shape for k, v in captured.items()}
    print(f"backend={keras.backend.backend()} n={n} length={length}")
    print(f"captured: {shapes}")

    runs = {
        "predict": lambda: model.predict(x, batch_size=batch, verbose=0),
        "capture": lambda: capture.predict(x, batch_size=batch),
        "by_hand": lambda: twin.predict(x, batch_size=batch, verbose=0),
    }
    times = interleaved(runs, repeats, rotate=True)
    print_times(times)
    for label, stat in (("median", medians(times)), ("min", minimums(times))):
        print(
            f"{label}: capture / hand-written scores model = "
            f"{stat['capture'] / stat['by_hand']:.3f}, hand-written / plain "
            f"predict = {stat['by_hand'] / stat['predict']:.3f}"
        )
    retraces = capture.trace_count - first_traces
    if keras.backend.backend() == "torch":
        traces = f"traces=n/a, eager: {capture.trace_count} python calls"
    else:
        traces = f"traces={first_traces}, retraces={retraces}"
    print(
        ratio_line(
            "capture_overhead", times, "capture", "predict", extra=[traces]
        )
    )


if __name__ == "__main__":
    main()
