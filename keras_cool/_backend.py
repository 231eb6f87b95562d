"""keras_cool's one backend-specific module.

Every other module uses only `keras` and `keras.ops`; this is the only one
that may import a backend package (`tensorflow`, `jax`, `torch`; never
`keras.src`). The rule is enforced by ruff (`TID251` in `pyproject.toml`)
and by `tests/test_api_guards.py`. Add code here only where a backend truly
must differ, with the measurement that shows it, or where only a backend
package can do the job (reading a TensorFlow checkpoint).

The EMA update `shadow <- d * shadow + (1 - d) * weight`
(`make_ema_average`). On JAX the update written in `keras.ops` is traced
into the compiled train step and XLA fuses it into one pass over each
weight. Without XLA (TensorFlow's default on a CPU-only machine, and eager
torch) the same expression runs as four kernels and three temporaries per
weight, as does Keras's own `use_ema` update. Here:

- torch: `Tensor.lerp_`, in place, one kernel per weight (what
  `torch.optim.swa_utils` uses for its EMA);
- TensorFlow: `shadow = (shadow + a * weight) / (1 + a)` with
  `a = 1 / d - 1`, one fused in-place kernel per weight (TensorFlow's
  `ResourceApplyProximalGradientDescent` with `l1 = 0`, `l2 = -1`; inside,
  it makes two in-place passes over the shadow, a subtraction and a
  division: five memory accesses per weight and no temporary). `1 / d`
  is rounded first, so `a` and `1 + a` are exact and the two coefficients
  sum to exactly 1. Where `d` may be 0 (a copy phase), a `tf.cond` copies
  the weights instead. Under a `tf.distribute` strategy the plain form is
  used (mirrored variables, cross-replica context);
- anything else: the plain `keras.ops` form.

Measured inside one `tf.function` (TF 2.21, 2-core CPU; README,
"Performance"): on the 2.6e4 weights of a small MLP the plain form takes
58-75 µs per update, the earlier two-kernel form (a subtraction, then
`ResourceApplyGradientDescent`) 31-58, the one-kernel form 21-31; on 1.33M
weights 627-740, 295-337 and 246-261 µs.

Every form is exact at the ends (finite values): `d = 0` gives
`shadow = weight` and `d = 1` leaves `shadow` unchanged (a -0.0 may come
back as +0.0 on TensorFlow). In between, torch's `lerp_` and TensorFlow's
one-kernel form round differently from the plain form (within float32
rounding); a weight that stays put keeps its shadow within a rounding
step on every backend (`tests/test_backend.py`).

Reading a TF1 checkpoint (`read_tf_checkpoint`), e.g. Google's original
`bert_model.ckpt`: only TensorFlow reads its tensor-bundle format, so
TensorFlow is imported lazily, on any Keras backend, with an install hint
when it is missing. The arrays come back as numpy; nothing else of
TensorFlow is used.

Once per step under a `tf.distribute` strategy (`once_per_step`). Inside
`MirroredStrategy`, Keras runs the train step once per replica, so a
callback's in-place update written in `keras.ops` ran once per replica: an
EMA with 2 replicas averaged with decay^2 (measured: off by 0.42 after two
epochs, equal to a one-device EMA with decay 0.81). `once_per_step` runs
the update in a `merge_call`, i.e. once, in cross-replica context, where
reading a mirrored weight gives its (synchronised) value and assigning a
mirrored variable writes every replica. On JAX the step is one SPMD
program (nothing to do), and torch has no `keras.distribution`.

Collecting tf.data iterators before interpreter shutdown
(`collect_before_exit`, TensorFlow). Keras feeds a `PyDataset` to `fit`
through `tf.data.Dataset.from_generator(...).prefetch(AUTOTUNE)`, and after
an error or `KeyboardInterrupt` in `fit` that iterator is left in a
reference cycle. Python then frees it in its final garbage collection,
after other threads have been barred from the interpreter: the prefetch
thread's pending generator call can never finish and the iterator's
destructor waits for it forever (1 exit in 9 hung in a measured loop; gdb:
main thread in `~PrefetchDatasetOp::Iterator`, prefetch thread in
`GeneratorDataset::GetNextInternal`). An `atexit` `gc.collect()` frees the
cycle while threads can still run (0 hangs in 57 runs of the same loop).

Whether a variable is split across the processes of a multi-process JAX
job (`split_across_processes`: multi-host `ModelParallel`): writing one
file of it needs a gather keras_cool does not do, so callbacks that write
weights refuse it at `on_train_begin` instead of failing in JAX at the
first save.

Which process of a multi-process job this is (`process_shard`), for
`Sequence(shard="auto")`: Keras 3.15 has no public process index. It is
read from JAX once `jax.distributed` is initialised (what
`keras.distribution.initialize` does), else from `torch.distributed` when
it is initialised; neither package is imported here if it is not loaded
already, and JAX is not asked before its distributed runtime is up (asking
would start its backend, after which `initialize` fails).
"""

import atexit
import functools
import gc
import sys

import keras

__all__ = [
    "collect_before_exit",
    "make_ema_average",
    "once_per_step",
    "process_shard",
    "read_tf_checkpoint",
    "split_across_processes",
]


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
            # shadow = (shadow + a * weight) / (1 + a), a = 1 / d - 1: one
            # fused kernel per weight, ProximalGradientDescent with l1 = 0
            # (var = (var - alpha * delta) / (1 + alpha * l2)), alpha = -a,
            # l2 = -1. With 1 / d rounded first, a and 1 + a are exact, so
            # the two coefficients sum to exactly 1: the shadow of a weight
            # that stays put does not drift.
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


def read_tf_checkpoint(prefix, skip=None):
    """Reads a TensorFlow checkpoint into `{name: numpy array}`.

    Args:
        prefix: the checkpoint prefix, e.g. `".../bert_model.ckpt"` (the
            files are `prefix.index` and `prefix.data-*`).
        skip: optional `fn(name) -> bool`; variables it accepts are not
            read (e.g. optimizer slots).

    Raises:
        ImportError: TensorFlow is not installed (any Keras backend can use
            the arrays, but only TensorFlow reads the format).
    """
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "Reading a TensorFlow checkpoint needs the tensorflow package "
            "(any Keras backend can then use the weights): pip install "
            "tensorflow-cpu, or tensorflow. Or convert the checkpoint to "
            "HuggingFace safetensors once and load that."
        ) from error
    reader = tf.train.load_checkpoint(str(prefix))
    names = sorted(reader.get_variable_to_shape_map())
    return {
        name: reader.get_tensor(name)
        for name in names
        if skip is None or not skip(name)
    }


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
