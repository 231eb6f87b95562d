"""Walk a model's layer tree and match names against its paths.

Shared private helpers: `keras_cool.capture.OutputCapture` resolves its
targets with all three, and `keras_cool.layers.AdversarialObjective`
uses `layer_paths` to look for `BatchNormalization` in the discriminator.
A layer's path is the `/`-joined
names from the model down (the model's own name left out), e.g.
`"encoder/block_1/attention/softmax"`. Children of a `keras.Model` are
`model.layers`; children of any other layer are the layers it holds in
its attributes (directly or in lists, tuples and dicts), which is where
Keras tracks sublayers such as the softmax inside `MultiHeadAttention`.
"""

import difflib
import fnmatch

import keras

__all__ = ["close_matches", "layer_paths", "match_string"]

_GLOB_CHARS = "*?["


def _layers_in(value, depth=0):
    if isinstance(value, keras.layers.Layer):
        yield value
    elif depth < 3 and isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _layers_in(item, depth + 1)
    elif depth < 3 and isinstance(value, dict):
        for item in value.values():
            yield from _layers_in(item, depth + 1)


def _children(layer):
    if isinstance(layer, keras.Model):
        yield from layer.layers
        return
    for value in list(vars(layer).values()):
        yield from _layers_in(value)


def layer_paths(model):
    """Return `{path: (layer, parent)}` for every layer below `model`.

    Depth first, in `model.layers` / attribute order. A layer reachable
    twice (shared, or referenced by another layer) gets its first path.
    """
    paths = {}
    seen = {id(model)}

    def visit(layer, prefix):
        for child in _children(layer):
            if id(child) in seen or isinstance(child, keras.layers.InputLayer):
                continue
            seen.add(id(child))
            path = prefix + child.name
            suffix = 1
            while path in paths:
                suffix += 1
                path = f"{prefix}{child.name}~{suffix}"
            paths[path] = (child, layer)
            visit(child, path + "/")

    visit(model, "")
    return paths


def match_string(target, names):
    """Names matching `target`: exact, glob pattern, or last component."""
    if target in names:
        return [target]
    if any(c in target for c in _GLOB_CHARS):
        return [n for n in names if fnmatch.fnmatchcase(n, target)]
    if "/" not in target:
        return [n for n in names if n.rsplit("/", 1)[-1] == target]
    return []


def close_matches(target, names, n=5):
    """Up to `n` names close to `target`, comparing paths and last parts."""
    names = list(names)
    found = difflib.get_close_matches(target, names, n=n, cutoff=0.5)
    tails = {name.rsplit("/", 1)[-1]: name for name in names}
    last = target.rsplit("/", 1)[-1]
    for tail in difflib.get_close_matches(last, list(tails), n=n, cutoff=0.6):
        if tails[tail] not in found:
            found.append(tails[tail])
    return found[:n]
