"""keras_cool's one backend-specific module.

Every other module uses only `keras` and `keras.ops`; this is the only one
that may import a backend package (`tensorflow`, `jax`, `torch`; never
`keras.src`), enforced by ruff (`TID251`) and `tests/test_api_guards.py`.
Code lives here only where a backend truly must differ, with the
measurement that shows it, or where only a backend package can do the job:

- `make_ema_average`: the in-place EMA update (torch `lerp_`, one fused
  TensorFlow kernel, else `keras.ops`);
- `once_per_step`: run an update once per step under `tf.distribute`;
- `gradient_after`: order a read of weights before the step's update
  (TensorFlow graphs);
- `collect_before_exit`: free tf.data iterators before interpreter exit;
- `split_across_processes`, `process_shard`: multi-process JAX / torch;
- `fused_attention_pays`: whether BERT's attention calls
  `keras.ops.dot_product_attention` at inference (torch only).

Why each exists, and what was measured, is in the docs' "How it works:
the backend module" page.
"""

import atexit
import functools
import gc
import sys

import keras

__all__ = [
    "collect_before_exit",
    "fused_attention_pays",
    "gradient_after",
    "make_ema_average",
    "once_per_step",
    "process_shard",
    "split_across_processes",
]


def fused_attention_pays():
    """Whether `keras.ops.dot_product_attention` beats Keras's op-by-op
    softmax attention at inference: on torch it is the fused
    `scaled_dot_product_attention` (0.87 of the time on MiniLM, CPU); on
    JAX and TensorFlow it runs the same ops as Keras's path (XLA fuses
    both), measured 1-2 % slower on JAX."""
    return keras.backend.backend() == "torch"


@functools.cache
def collect_before_exit():
    """On TensorFlow, runs `gc.collect()` at exit, before shutdown (once)."""
    if keras.backend.backend() == "tensorflow":
        atexit.register(gc.collect)


def make_ema_average():
    """Returns `average(shadows, weights, d, positive=False)`, updating
    `shadows` in place.

    `shadows` are float32 `keras.Variable`s, `weights` float32 tensors of
    the same shapes, `d` a float32 scalar tensor in [0, 1]. `positive`:
    the caller knows, when the step is traced, that `d > 0` at every step;
    TensorFlow then skips the branch that makes `d = 0` an exact copy.
    """
    backend = keras.backend.backend()
    if backend == "torch":
        return _torch_average()
    if backend == "tensorflow":
        return _tensorflow_average()
    return _plain_average


def _plain_average(shadows, weights, d, positive=False):
    for shadow, weight in zip(shadows, weights):
        shadow.assign(d * shadow.value + (1.0 - d) * weight)


def _torch_average():
    import torch

    def average(shadows, weights, d, positive=False):
        with torch.no_grad():
            t = 1.0 - d
            for shadow, weight in zip(shadows, weights):
                shadow.value.lerp_(weight, t)

    return average


def _tensorflow_average():
    import tensorflow as tf

    def average(shadows, weights, d, positive=False):
        if tf.distribute.has_strategy():
            return _plain_average(shadows, weights, d)
        weights = list(weights)

        def lerp():
            # shadow = (shadow + a * weight) / (1 + a), a = 1 / d - 1, as
            # ProximalGradientDescent (alpha = -a, l1 = 0, l2 = -1); see
            # docs/how_it_works/ema.md.
            alpha = 1.0 - tf.math.reciprocal(d)
            for shadow, weight in zip(shadows, weights):
                tf.raw_ops.ResourceApplyProximalGradientDescent(
                    var=shadow.value.handle,
                    alpha=alpha,
                    l1=0.0,
                    l2=-1.0,
                    delta=weight,
                )

        if positive:
            lerp()
            return

        def copy():
            # d = 0 (1 / d is infinite): the weights, exactly.
            for shadow, weight in zip(shadows, weights):
                shadow.assign(weight)

        tf.cond(d > 0, lerp, copy)

    return average


def once_per_step(update):
    """Runs `update()` once per train step, whatever the replica count.

    TensorFlow in the replica context of a `tf.distribute` strategy: in a
    `merge_call` (cross-replica context). Anywhere else: directly.
    """
    if keras.backend.backend() != "tensorflow":
        return update()
    import tensorflow as tf

    if (
        not tf.distribute.has_strategy()
        or tf.distribute.in_cross_replica_context()
    ):
        return update()
    context = tf.distribute.get_replica_context()
    return context.merge_call(lambda strategy: update())


def gradient_after(values, outputs):
    """`outputs` unchanged, but on TensorFlow their gradient is computed
    only after `values` are.

    In a TensorFlow graph, a read of a variable whose value feeds only
    another part of the gradient is not ordered before the optimizer's
    update of that variable: `AdversarialObjective`'s frozen pass (D's
    weights read for the generator's gradient) sometimes read D's weights
    after this step's update (run-to-run differences proportional to the
    learning rate). Routing D's own gradient through `outputs` makes that
    update wait for the read. JAX and torch run the step in order: no-op.
    """
    if keras.backend.backend() != "tensorflow":
        return outputs
    import tensorflow as tf

    @tf.custom_gradient
    def identity(x):
        def grad(upstream):
            with tf.control_dependencies(values):
                return tf.identity(upstream)

        return tf.identity(x), grad

    return keras.tree.map_structure(identity, outputs)


def split_across_processes(variables):
    """Paths of the `variables` whose values are split across the
    processes of a multi-process JAX job (no process holds all of it, so
    none can write it to a file); empty elsewhere."""
    jax = sys.modules.get("jax")
    if jax is None or not jax.distributed.is_initialized():
        return []
    return [
        v.path
        for v in variables
        if not getattr(v.value, "is_fully_addressable", True)
    ]


def process_shard():
    """`(process_index, process_count)` of the running multi-process job:
    JAX's once `jax.distributed` is initialised, else torch.distributed's
    when initialised, else `(0, 1)`."""
    jax = sys.modules.get("jax")
    if jax is not None and jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    torch = sys.modules.get("torch")
    if torch is not None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    return 0, 1
