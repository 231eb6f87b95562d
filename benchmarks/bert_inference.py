"""Inference speed of `keras_cool.models.build_bert` vs keras-hub's BERT.

Both encoders get the same config (4 layers, hidden 256, 4 heads,
intermediate 1024, vocabulary 30522) and random weights, and predict
the same padded batches (batch 8, sequence 128) with `model.predict`.
keras-hub's `BertBackbone` uses the tanh GELU, so ours is built with
`hidden_act="gelu_new"` for a like-for-like ratio; the exact (erf) GELU,
which Google's and HuggingFace's `"gelu"` configs ask for, is timed too.
Calls are interleaved (rotating order) over several rounds; medians and
minimums are reported (`benchmarks/_timing.py`).

`--clock cpu` (the default) times the CPU time of this process (all its
threads): on a machine shared with other jobs the wall clock mostly
measures who got the cores. Use `--clock wall` on a dedicated machine or
an accelerator.

Last line: `bert_inference: ratio=R (keras_cool=... s, keras_hub=... s,
...)`, R = our median time / keras-hub's on the chosen clock (<= 1.05 is
the bar). Without keras-hub installed the comparison is skipped and R is
printed as 0.

Run: python benchmarks/bert_inference.py [--quick] [--rounds 15]
    [--batches 4] [--clock cpu|wall]
"""

import argparse
import time

import keras
import numpy as np
from _timing import interleaved
from _timing import print_times
from _timing import ratio_line

from keras_cool.models import build_bert


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="clock of the ratio (both are printed)",
    )
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    layers, hidden, length, vocab = 4, 256, 128, 30522
    rounds, batches = 15, 4
    if args.quick:
        layers, hidden, length, vocab = 2, 64, 32, 1000
        rounds, batches = 2, 2
    rounds = args.rounds or rounds
    batches = args.batches or batches
    batch = 8
    config = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "intermediate_size": 4 * hidden,
        "max_position_embeddings": 512,
    }
    rng = np.random.default_rng(args.seed)
    n = batch * batches
    token_ids = rng.integers(1, vocab, (n, length)).astype("int32")
    lengths = rng.integers(length // 2, length + 1, n)
    token_ids[np.arange(length)[None] >= lengths[:, None]] = 0  # padding
    segment_ids = (np.arange(length)[None] >= lengths[:, None] // 2).astype(
        "int32"
    )
    padding_mask = (token_ids != 0).astype("int32")
    print(
        f"backend={keras.backend.backend()} layers={layers} hidden={hidden} "
        f"batch={batch} length={length} batches/round={batches} "
        f"rounds={rounds}"
    )

    ours = build_bert(config, hidden_act="gelu_new")
    runs = [
        (
            "keras_cool",
            lambda: ours.predict(
                [token_ids, segment_ids], batch_size=batch, verbose=0
            ),
        )
    ]
    if not args.quick:
        erf = build_bert(config)
        runs.append(
            (
                "keras_cool_erf",
                lambda: erf.predict(
                    [token_ids, segment_ids], batch_size=batch, verbose=0
                ),
            )
        )
    try:
        import keras_hub
    except ImportError:
        keras_hub = None
        print("keras-hub is not installed: pip install keras-hub --no-deps")
    if keras_hub is not None:
        hub = keras_hub.models.BertBackbone(
            vocabulary_size=vocab,
            num_layers=layers,
            num_heads=4,
            hidden_dim=hidden,
            intermediate_dim=4 * hidden,
            max_sequence_length=512,
        )
        hub_inputs = {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
        }
        runs.append(
            (
                "keras_hub",
                lambda: hub.predict(hub_inputs, batch_size=batch, verbose=0),
            )
        )
    for _, fn in runs:  # compile; not timed
        fn()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = interleaved(dict(runs), rounds, rotate=True, clock=clock)
    print(f"{args.clock} seconds per {n} samples:")
    print_times(times)
    if keras_hub is None:
        print(
            "bert_inference: ratio=0 (skipped: keras-hub not installed; "
            f"keras_cool={min(times['keras_cool']):.4f} s {args.clock})"
        )
        return
    print(
        ratio_line(
            "bert_inference",
            times,
            "keras_cool",
            "keras_hub",
            extra=[f"clock={args.clock}"],
        )
    )


if __name__ == "__main__":
    main()
