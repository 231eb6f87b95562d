"""Inference speed of `keras_cool.models.build_bert` vs keras-hub's BERT.

Both encoders get the same config (4 layers, hidden 256, 4 heads,
intermediate 1024, vocabulary 30522) and random weights, and predict
the same padded batches (batch 8, sequence 128) with `model.predict`.
keras-hub's `BertBackbone` uses the tanh GELU, so ours is built with
`hidden_act="gelu_new"` for a like-for-like ratio; the exact (erf) GELU,
which Google's and HuggingFace's `"gelu"` configs ask for, is timed too.
Calls are interleaved (rotating order) over several rounds; medians and
minimums are reported. The timing helper is written inline (a shared
`benchmarks/_timing.py` may replace it).

Each call is timed twice: wall clock, and the CPU time of this process
(all its threads). On a machine shared with other jobs the wall clock
mostly measures who got the cores; the CPU time measures the work, so
`--clock cpu` (the default) gives the ratio; use `--clock wall` on a
dedicated machine or an accelerator. Both are printed.

Last line: `bert_inference: ratio=R (keras_cool=... s, keras_hub=... s,
...)`, R = our median time / keras-hub's on the chosen clock (<= 1.05 is
the bar). Without keras-hub installed the comparison is skipped and R is
printed as 0.

Run: python benchmarks/bert_inference.py [--quick] [--rounds 15]
    [--batches 4] [--clock cpu|wall]
"""

import argparse
import statistics
import time

import keras
import numpy as np

from keras_cool.models import build_bert


def interleaved(runs, rounds):
    """Wall and process-CPU seconds per round, `{name: [...]}` each.

    The order rotates every round. The CPU time (all threads of this
    process) is less disturbed by other processes on a shared machine.
    """
    wall = {name: [] for name, _ in runs}
    cpu = {name: [] for name, _ in runs}
    for i in range(rounds):
        k = i % len(runs)
        for name, fn in runs[k:] + runs[:k]:
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


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
    wall, cpu = interleaved(runs, rounds)
    for name in wall:
        print(
            f"{name}: wall median {statistics.median(wall[name]):.4f} s, min "
            f"{min(wall[name]):.4f} s; CPU median "
            f"{statistics.median(cpu[name]):.4f} s, min {min(cpu[name]):.4f}"
            f" s per {n} samples"
        )
    times = cpu if args.clock == "cpu" else wall
    medians = {name: statistics.median(v) for name, v in times.items()}
    if keras_hub is None:
        print(
            "bert_inference: ratio=0 (skipped: keras-hub not installed; "
            f"keras_cool={medians['keras_cool']:.4f} s {args.clock})"
        )
        return

    def ratio(values, pick):
        return pick(values["keras_cool"]) / pick(values["keras_hub"])

    other = wall if args.clock == "cpu" else cpu
    print(
        f"bert_inference: ratio={ratio(times, statistics.median):.3f} "
        f"(clock={args.clock}, keras_cool={medians['keras_cool']:.4f} s, "
        f"keras_hub={medians['keras_hub']:.4f} s, ratio of minimums="
        f"{ratio(times, min):.3f}, other clock's ratio="
        f"{ratio(other, statistics.median):.3f})"
    )


if __name__ == "__main__":
    main()
