"""`OutputCapture`: read intermediate tensors of any Keras 3 model."""

import functools
import inspect
import sys

import keras
import numpy as np

from keras_cool._layer_tree import close_matches
from keras_cool._layer_tree import layer_paths
from keras_cool._layer_tree import match_string
from keras_cool.capture import tag

__all__ = ["OutputCapture"]

_MAX_LISTED = 40


class OutputCapture:
    """Record the outputs of chosen layers and tagged tensors of a model.

    Works on Functional, Sequential, subclassed and nested models, and on
    layers called inside another layer's `call` (for example the softmax
    inside `keras.layers.MultiHeadAttention`, which holds the attention
    probabilities). While a capture is active, the `call` of each target
    layer is wrapped on the instance; on exit (also when the forward pass
    raises) the instance is restored exactly, so nothing leaks into
    `get_config`, saving or later calls. Tensors that are no layer's
    output are tagged inside `call` with `keras_cool.capture(name, x)`.

    A layer called several times (shared) gives one entry per call, in
    the order the calls ran: in `outputs` and `predict` results its key is
    then `"path[i]"`; `calls` always maps a key to the list of entries. A
    Functional model runs its graph by depth, not in the order it was
    written, so calls at the same depth may run in another order: for
    `keras.Model([a, b], [shared(a), shared(b)])`, entry 0 is the call on
    `b`. Tell such entries apart by their values, or capture from a
    subclassed model, whose `call` runs in the order written.

    Two ways to use it:
    - as a context manager around your own eager forward pass
      (`outputs`, `calls`, `cap[key]` afterwards);
    - `predict(x, batch_size=...)`: compiled and batched like
      `model.predict` (one trace, reused on later calls), returning numpy
      arrays. Captured tensors must then have the batch as first axis.
      `trace_count` counts how often its Python `call` ran (on torch,
      which predicts eagerly, once per batch).

    `layer_paths` lists every path that can be targeted.

    Attention probabilities: the `Softmax` inside each
    `keras.layers.MultiHeadAttention` outputs them, shaped (batch, heads,
    query, key). The target `keras.layers.Softmax` (a class) captures them
    for every `MultiHeadAttention` of the model, whatever the layers are
    named, plus any other `Softmax` layer, each under its path. Targeting
    such a `Softmax` makes its `MultiHeadAttention` take its explicit
    (non-fused) path while the capture is active, as
    `return_attention_scores=True` does; this fails if flash attention is
    enabled.

    How a string target matches, in this order: the exact layer path
    (`"encoder/block_1/attention"`, see `layer_paths`) or tag name; else,
    if it holds any of `*`, `?`, `[`, a glob matched with
    `fnmatch.fnmatchcase` against every whole path and tag name, where `*`
    also matches `/`; else, if it has no `/`, every layer whose own name
    (the last part of its path) is the string. Keras names the second
    layer of a kind `multi_head_attention_1`, with a sublayer `softmax_1`,
    so `"*_attention/softmax*"` matches only the first of two
    `MultiHeadAttention` layers left with their default names: target a
    class (or a predicate) to reach every layer of a kind. A string that
    matches nothing raises.

    Args:
        model: a built `keras.Model` (or layer).
        targets: one target or a list of them. A target is a layer object;
            a layer class (a `keras.layers.Layer` subclass): every layer of
            the model, at any depth, that is an instance of it; a string:
            a layer path, a layer name, a glob pattern over paths
            (`"*/attention/softmax*"`) or a tag name given to
            `keras_cool.capture`, matched as described above; or a
            predicate `fn(layer) -> bool`. A class or predicate that
            matches no layer raises.
        output_key: key of the model's own outputs in `predict` results.
            Defaults to `"outputs"`.

    Example:

    ```python
    mha = keras.layers.MultiHeadAttention(2, 8, name="attention")
    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, mha(inputs, inputs))
    x = np.random.rand(3, 5, 8)
    with keras_cool.OutputCapture(model, "attention/softmax*") as cap:
        model(x)
    probs = next(iter(cap.outputs.values()))  # (3, 2, 5, 5): batch, heads
    # Every MultiHeadAttention's probabilities, whatever the names:
    arrays = keras_cool.OutputCapture(model, keras.layers.Softmax).predict(x)
    sorted(arrays)  # ['attention/softmax', 'outputs']
    ```

    Reference:
        Su Jianlin, "让Keras更酷一些!: 中间变量、权重滑动和安全生成器"
        (2019), https://kexue.fm/archives/6575 (reading intermediate
        variables).
    """

    def __init__(self, model, targets, output_key="outputs"):
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(
                f"OutputCapture needs a Keras model or layer, got "
                f"{type(model).__name__}."
            )
        if isinstance(targets, (list, tuple)):
            targets = list(targets)
        else:
            targets = [targets]
        if not targets:
            raise ValueError("OutputCapture needs at least one target.")
        for target in targets:
            if isinstance(target, type) and not issubclass(
                target, keras.layers.Layer
            ):
                raise TypeError(
                    "A class target must be a keras.layers.Layer subclass "
                    f"(e.g. keras.layers.Softmax), got {target!r}."
                )
            if not (
                isinstance(target, (str, keras.layers.Layer))
                or callable(target)
            ):
                raise TypeError(
                    "A target is a layer, a layer class, a string (path, "
                    "name, glob pattern or tag) or a predicate "
                    f"fn(layer) -> bool; got {target!r}."
                )
        self.model = model
        self.targets = targets
        self.output_key = output_key
        self.trace_count = 0
        self._records = {}
        self._tag_names_seen = []
        self._string_hits = set()
        self._chosen = {}
        self._restore = None
        self._runner = None
        self._resolved = None
        self._predict_resolution = None

    # ----------------------------------------------------------- targets
    @property
    def layer_paths(self):
        """All layer paths of the model, in traversal order."""
        return list(layer_paths(self.model))

    def _resolve(self):
        """`{path: layer}` for the layer targets, and their MHA parents."""
        tree = layer_paths(self.model)
        by_id = {id(layer): path for path, (layer, _) in tree.items()}
        chosen, hits = {}, set()
        for target in self.targets:
            if isinstance(target, keras.layers.Layer):
                if id(target) not in by_id:
                    raise ValueError(
                        f"Layer {target.name!r} is not part of model "
                        f"{self.model.name!r}. {self._listing(tree)}"
                    )
                chosen[by_id[id(target)]] = target
            elif isinstance(target, str):
                for path in match_string(target, tree):
                    chosen[path] = tree[path][0]
                    hits.add(target)
            elif isinstance(target, type):
                matched = [
                    p
                    for p, (layer, _) in tree.items()
                    if isinstance(layer, target)
                ]
                if not matched:
                    raise ValueError(
                        f"No layer of class {target.__name__} in model "
                        f"{self.model.name!r}. {self._listing(tree)}"
                    )
                chosen.update({p: tree[p][0] for p in matched})
            else:
                matched = [p for p, (layer, _) in tree.items() if target(layer)]
                if not matched:
                    raise ValueError(
                        f"Predicate {target!r} matches no layer of model "
                        f"{self.model.name!r}. {self._listing(tree)}"
                    )
                chosen.update({p: tree[p][0] for p in matched})
        parents = []
        for path, layer in chosen.items():
            parent = tree[path][1]
            if isinstance(layer, keras.layers.Softmax) and isinstance(
                parent, keras.layers.MultiHeadAttention
            ):
                if all(parent is not p for p in parents):
                    parents.append(parent)
        return chosen, parents, hits

    def _listing(self, tree, target=None):
        names = list(tree) + sorted(set(self._tag_names_seen))
        text = ""
        if target is not None:
            close = close_matches(target, names)
            if close:
                text += f"Close matches: {close}. "
        shown = names[:_MAX_LISTED]
        more = len(names) - len(shown)
        text += f"Available paths and tags: {shown}"
        return text + (f" (and {more} more)." if more > 0 else ".")

    # ---------------------------------------------------- context manager
    def __enter__(self):
        return self._enter()

    def _enter(self, resolved=None):
        if self._restore is not None:
            raise RuntimeError("This OutputCapture is already active.")
        if not self.model.built:
            raise ValueError(
                f"Model {self.model.name!r} is not built, so some of its "
                "layers may not exist yet: call it once on sample data (or "
                "call `model.build(input_shape)`) before capturing."
            )
        self._records = {}
        self._tag_names_seen = []
        chosen, parents, hits = resolved or self._resolve()
        self._resolved = (chosen, parents, hits)
        self._string_hits = set(hits)
        self._chosen = chosen
        self._restore = []
        try:
            for parent in parents:
                self._wrap(parent, _force_attention_scores)
            for path, layer in chosen.items():
                self._wrap(layer, functools.partial(self._recording, path))
        except BaseException:
            self._unwrap()
            raise
        tag.push(self._record_tag)
        return self

    def __exit__(self, exc_type, exc, tb):
        self._unwrap()
        tag.pop(self._record_tag)
        if exc_type is None:
            self._check_complete()
        return False

    def _wrap(self, layer, make_wrapper):
        own = vars(layer)
        saved = own.get("call")
        had_own = "call" in own
        wrapper = make_wrapper(layer.call)
        object.__setattr__(layer, "call", wrapper)
        self._restore.append((layer, had_own, saved))

    def _unwrap(self):
        for layer, had_own, saved in reversed(self._restore or []):
            if had_own:
                object.__setattr__(layer, "call", saved)
            else:
                object.__delattr__(layer, "call")
        self._restore = None

    def _recording(self, key, original):
        @functools.wraps(original)
        def call(*args, **kwargs):
            outputs = original(*args, **kwargs)
            self._records.setdefault(key, []).append(outputs)
            return outputs

        return call

    def _record_tag(self, name, tensor):
        self._tag_names_seen.append(name)
        for target in self.targets:
            if isinstance(target, str) and match_string(target, [name]):
                self._string_hits.add(target)
                self._records.setdefault(name, []).append(tensor)
                return

    def _check_complete(self):
        tree = None
        for target in self.targets:
            if isinstance(target, str) and target not in self._string_hits:
                tree = tree or layer_paths(self.model)
                raise ValueError(
                    f"Target {target!r} matches no layer path, layer name "
                    f"or tag of model {self.model.name!r}. "
                    f"{self._listing(tree, target)}"
                )
        missing = [p for p in self._chosen if p not in self._records]
        if missing:
            raise ValueError(
                f"Layer(s) {missing} matched the targets but were not called "
                "during the forward pass, so nothing was captured. Check that "
                "the pass goes through them (a layer may be skipped, e.g. "
                "dropout with rate 0 or a fused fast path)."
            )

    # ------------------------------------------------------------ results
    @property
    def calls(self):
        """`{key: [output of call 1, output of call 2, ...]}`."""
        return {key: list(values) for key, values in self._records.items()}

    @property
    def outputs(self):
        """Flat `{key: tensor}`; a key called n > 1 times gives `key[i]`."""
        flat = {}
        for key, values in self._records.items():
            if len(values) == 1:
                flat[key] = values[0]
            else:
                for i, value in enumerate(values):
                    flat[f"{key}[{i}]"] = value
        return flat

    def __getitem__(self, key):
        outputs = self.outputs
        if key not in outputs:
            raise KeyError(
                f"Nothing captured under {key!r}; captured keys: "
                f"{sorted(outputs)}."
            )
        return outputs[key]

    # ------------------------------------------------------------ predict
    def predict(self, x, batch_size=None, steps=None, verbose=0):
        """Run the model compiled and batched, capturing the targets.

        Args:
            x: model inputs, as for `model.predict`.
            batch_size: as for `model.predict`.
            steps: as for `model.predict`.
            verbose: as for `model.predict` (default silent).

        Returns:
            dict of numpy arrays: the captured keys (as in `outputs`) and
            the model's outputs under `output_key`.
        """
        if not self.model.built:
            try:
                sample = keras.tree.map_structure(lambda a: a[:1], x)
            except TypeError:
                sample = None
            if sample is None:
                raise ValueError(
                    f"Model {self.model.name!r} is not built: call it once "
                    "(or `model.build(input_shape)`) before `predict`."
                )
            self.model(sample)
        if self._runner is None:
            self._runner = _CaptureRunner(self, name=f"{self.model.name}_cap")
            if getattr(self.model, "compiled", False):
                # Compile the capture like the user's model is compiled.
                self._runner.run_eagerly = self.model.run_eagerly
                self._runner.jit_compile = self.model.jit_compile
        result = self._runner.predict(
            x, batch_size=batch_size, steps=steps, verbose=verbose
        )
        return keras.tree.map_structure(np.asarray, result)


class _CaptureRunner(keras.Model):
    """Internal model: runs the user's model under capture, returns a dict.

    `owner` is the `OutputCapture` that made it. Keras compiles its
    `predict` on each backend; the Python `call` (and so the layer
    wrapping) only runs while tracing.
    """

    def __init__(self, owner, **kwargs):
        super().__init__(**kwargs)
        self.inner = owner.model
        self._owner_ref = [owner]

    def call(self, inputs, training=False):
        owner = self._owner_ref[0]
        owner.trace_count += 1
        # Resolve the targets once: on torch `call` runs for every batch.
        owner._enter(owner._predict_resolution)
        try:
            outputs = self.inner(inputs, training=training)
        except BaseException:
            owner.__exit__(*sys.exc_info())
            raise
        owner.__exit__(None, None, None)
        owner._predict_resolution = owner._resolved
        result = owner.outputs
        owner._records = {}  # traced tensors must not outlive the trace
        if owner.output_key in result:
            raise ValueError(
                f"A captured key is named {owner.output_key!r}, like the "
                "model outputs; pass another `output_key`."
            )
        _check_batch_axis(result, inputs)
        result[owner.output_key] = outputs
        return result


def _check_batch_axis(captured, inputs):
    """`predict` joins batches along axis 0: every captured value needs a
    leading batch axis of the inputs' batch size."""
    first = keras.tree.flatten(inputs)[0]
    batch = tuple(first.shape)[0] if len(first.shape) else None
    for key, value in captured.items():
        for tensor in keras.tree.flatten(value):
            shape = tuple(tensor.shape)
            if (
                not shape
                or (shape[0] != batch and None not in (shape[0], batch))
                or ((shape[0] is None) != (batch is None))
            ):
                raise ValueError(
                    f"OutputCapture.predict: the captured value {key!r} has "
                    f"shape {shape}, with no batch axis of the inputs' "
                    f"batch size ({batch}), so it cannot be joined over "
                    "batches. Capture per-sample tensors for predict, or "
                    "read it from one call: `with capture: model(x)`."
                )


def _force_attention_scores(original):
    """Wrap `MultiHeadAttention.call` so the softmax really runs."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        asked = bound.arguments.get("return_attention_scores", False)
        bound.arguments["return_attention_scores"] = True
        output, scores = original(*bound.args, **bound.kwargs)
        return (output, scores) if asked else output

    return call
