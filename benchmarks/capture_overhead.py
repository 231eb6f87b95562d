"""Overhead of `OutputCapture.predict` over plain `model.predict`.

A small Transformer encoder (2 blocks of `keras.layers.MultiHeadAttention`
+ feed-forward) runs on the same data with `model.predict` and with
`OutputCapture(model, "*softmax*").predict`, which also returns every
attention-probability tensor. Calls are interleaved and repeated; the
median time of each is reported. The capture is also checked for
retracing: its internal `call` counts how often Python runs it (on
TensorFlow and JAX only while tracing; torch predicts eagerly, so there
every batch runs Python and "traces" do not apply).

Last line: `capture_overhead: ratio=R (capture=... s, predict=... s,
traces=N, retraces=M)`, R = capture time / predict time.

Run: python benchmarks/capture_overhead.py [--quick] [--repeats 7]
"""

import argparse
import time

import keras
import numpy as np

import keras_cool


def build_model(length, vocab, dim, blocks, heads):
    inputs = keras.Input((length,), dtype="int32")
    h = keras.layers.Embedding(vocab, dim)(inputs)
    for i in range(blocks):
        attention = keras.layers.MultiHeadAttention(heads, dim // heads)
        h = keras.layers.LayerNormalization()(h + attention(h, h))
        ffn = keras.layers.Dense(4 * dim, activation="relu")(h)
        h = keras.layers.LayerNormalization()(h + keras.layers.Dense(dim)(ffn))
    h = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(2)(h)
    return keras.Model(inputs, outputs, name="small_transformer")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


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
        n, length, dim, batch, repeats = 4096, 64, 64, 256, 7
    repeats = args.repeats or repeats
    vocab = 100
    x = np.random.default_rng(args.seed).integers(0, vocab, (n, length))
    model = build_model(length, vocab, dim, blocks=2, heads=4)
    capture = keras_cool.OutputCapture(model, "*softmax*")

    # First calls compile; they are not timed.
    plain = model.predict(x, batch_size=batch, verbose=0)
    captured = capture.predict(x, batch_size=batch)
    first_traces = capture.trace_count
    np.testing.assert_allclose(captured["outputs"], plain, 1e-4, 1e-4)
    shapes = {k: v.shape for k, v in captured.items()}
    print(f"backend={keras.backend.backend()} n={n} length={length}")
    print(f"captured: {shapes}")

    times = {"capture": [], "predict": []}
    for i in range(repeats):
        pairs = [
            ("predict", lambda: model.predict(x, batch_size=batch, verbose=0)),
            ("capture", lambda: capture.predict(x, batch_size=batch)),
        ]
        for name, fn in pairs if i % 2 else pairs[::-1]:
            times[name].append(timed(fn)[0])
    for name, values in times.items():
        print(f"{name}: " + " ".join(f"{v:.3f}" for v in values) + " s")
    median = {k: float(np.median(v)) for k, v in times.items()}
    ratio = median["capture"] / median["predict"]
    retraces = capture.trace_count - first_traces
    if keras.backend.backend() == "torch":
        traces = f"traces=n/a, eager: {capture.trace_count} python calls"
    else:
        traces = f"traces={first_traces}, retraces={retraces}"
    print(
        f"capture_overhead: ratio={ratio:.3f} "
        f"(capture={median['capture']:.4f} s, "
        f"predict={median['predict']:.4f} s, {traces})"
    )


if __name__ == "__main__":
    main()
