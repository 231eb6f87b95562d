"""Run extra per-step work inside a model's compiled train step.

Private. This is the one module that depends on Keras trainer internals:
`model.train_function` / `make_train_function`, the model's own
`train_step` (`vars(model).get("train_step")`, a user override), torch's
per-call `model.train_step` lookup, and the layout of the JAX trainer
state `(trainable, non_trainable, optimizer, metrics)`.

`attach(model, member)` replaces `model.train_function` with a small
dispatcher. At each call it runs a train function built from the model's
own `train_step` followed by every *active* member's update (members run in
attach order, after the optimizer step), so the updates are traced into
the same compiled function as the step. One function is built per set of
active members and cached; with no active member the model's plain train
function runs. `deactivate` keeps a member attached but idle (the cached
function stays, so the next `fit` does not compile again); `detach` removes
it, and gives the model its own train step back when none is left.

A member is any hashable object (compared by identity) with this small
protocol:

- `update_in_place()`: TensorFlow and torch. Called inside the train step
  right after the optimizer step; assigns the member's own variables. Under
  a `tf.distribute` strategy it runs once per step, in cross-replica
  context (`keras_cool._backend.once_per_step`), not once per replica.
- `hook_variables()`: JAX. The model variables whose values after the
  optimizer step are passed to `advance`, in that order (may be empty).
- `hook_state()`: JAX. The member's state as a list of arrays, read before
  every train function call (its current, "live" values).
- `advance(state, weights) -> state`: JAX. Pure: the next state (a list of
  arrays of the same shapes and dtypes) from the state and the weights.
- `receive_state(state)`: JAX. Called after every train function call with
  the new state arrays; the member keeps them (and may write them into its
  variables lazily).
- `hook_writes()`: JAX, optional. Variables of the trainer state (model or
  optimizer variables) that the member sets in the step; then
  `write(state, weights) -> values` (called with the new state) gives
  their new values, in that order.

On JAX, `hook_variables()` and `hook_writes()` may name trainable,
non-trainable and optimizer variables. How the members' states ride
through the stateless JAX step is described in the docs' "How it works:
the train-step hook" page.
"""

import keras

from keras_cool._backend import once_per_step

__all__ = [
    "attach",
    "can_write",
    "deactivate",
    "detach",
    "trainer_variables",
]

# Model attribute holding the model's hook (a `_Chain`).
CHAIN_ATTR = "_keras_cool_train_step_hook"


def trainer_variables(model):
    """The three variable groups of the JAX trainer state, in its order:
    `(trainable, non_trainable, optimizer)` variables (the fourth group,
    the metrics variables, also carries the members' states)."""
    optimizer = getattr(model, "optimizer", None)
    return (
        list(model.trainable_variables),
        list(model.non_trainable_variables),
        list(optimizer.variables) if optimizer is not None else [],
    )


def can_write(model, variable):
    """Whether a member may read and set `variable` in the train step
    (`hook_variables`, `hook_writes`): on JAX, where the trainer state
    holds it and no `keras.distribution` is set; anywhere elsewhere."""
    if keras.backend.backend() != "jax":
        return True
    if keras.distribution.distribution() is not None:
        return False  # the hook's writes do not support it there
    groups = trainer_variables(model)
    return any(v is variable for group in groups for v in group)


def attach(model, member):
    """Runs `member`'s update in `model`'s train step from now on."""
    name = type(member).__name__
    if keras.backend.backend() == "jax":
        nnx = getattr(keras.config, "is_nnx_enabled", lambda: False)
        if nnx():
            raise NotImplementedError(
                f"{name} does not support Flax NNX models "
                "(KERAS_NNX_ENABLED): their train step bypasses "
                "model.train_step."
            )
    chain = getattr(model, CHAIN_ATTR, None)
    if chain is None:
        chain = _Chain(model)
        setattr(model, CHAIN_ATTR, chain)
    if member not in chain.members:
        chain.members.append(member)
    chain.active.add(member)
    chain.attach()


def deactivate(model, member):
    """Keeps `member` attached, but its update no longer runs."""
    chain = getattr(model, CHAIN_ATTR, None)
    if chain is not None:
        chain.active.discard(member)


def detach(model, member):
    """Removes `member`; the model's own train step is back when the last
    member goes."""
    chain = getattr(model, CHAIN_ATTR, None)
    if chain is not None and member in chain.members:
        chain.remove(member)


def _in_place_step(inner, members):
    """TensorFlow and torch: `inner`, then each member's update."""

    def train_step(*args, **kwargs):
        logs = inner(*args, **kwargs)
        for member in members:
            once_per_step(member.update_in_place)
        return logs

    return train_step


def _split(metrics, count):
    """The metrics list without, and with only, its last `count` entries."""
    cut = len(metrics) - count
    return list(metrics[:cut]), list(metrics[cut:])


def _jax_step(model, inner, members):
    """JAX: `inner`, then each member's `advance`; the members' states are
    the last entries of the metrics-variables list (see `_jax_function`)."""
    index = {}
    for g, group in enumerate(trainer_variables(model)):
        for i, v in enumerate(group):
            index[id(v)] = (g, i)
    positions = [
        [index[id(v)] for v in member.hook_variables()] for member in members
    ]
    targets = [
        [index[id(v)] for v in getattr(member, "hook_writes", list)()]
        for member in members
    ]
    counts = [len(member.hook_state()) for member in members]

    def stateless_train_step(state, data):
        trainable, non_trainable, optimizer, metrics = state
        metrics, extra = _split(metrics, sum(counts))
        logs, state = inner(
            (trainable, non_trainable, optimizer, metrics), data
        )
        trainable, non_trainable, optimizer, metrics = state
        lists = (list(trainable), list(non_trainable), list(optimizer))
        new, start = [], 0
        for member, count, where, writes in zip(
            members, counts, positions, targets
        ):
            weights = [lists[g][i] for g, i in where]
            part = member.advance(extra[start : start + count], weights)
            new.extend(part)
            start += count
            if writes:
                for (g, i), value in zip(writes, member.write(part, weights)):
                    lists[g][i] = value
        trainable, non_trainable, optimizer = lists
        metrics = list(metrics) + new
        return logs, (trainable, non_trainable, optimizer, metrics)

    return stateless_train_step, counts


def _jax_function(inner, members, counts):
    """JAX: carry the members' states through the trainer's function."""

    def train_function(state, iterator):
        extra = []
        for member in members:
            extra.extend(member.hook_state())
        trainable, non_trainable, optimizer, metrics = state
        metrics = list(metrics) + extra
        logs, state = inner(
            (trainable, non_trainable, optimizer, metrics), iterator
        )
        trainable, non_trainable, optimizer, metrics = state
        metrics, extra = _split(metrics, sum(counts))
        start = 0
        for member, count in zip(members, counts):
            member.receive_state(extra[start : start + count])
            start += count
        return logs, (trainable, non_trainable, optimizer, metrics)

    return train_function


class _sharded_state:
    """JAX under a `keras.distribution`: while the train function is made,
    the trainer's output shardings (`_get_state_sharding_spec`, one per
    state entry) are those of the state it is called with, followed by
    those of the members' state arrays (an EMA shadow has its weight's
    layout). During `fit` the model variables hold no values (the trainer
    owns the state), so the shardings are read off the state itself.
    """

    def __init__(self, model, members, state):
        self.model = model
        self.members = members
        self.state = state
        self.active = bool(members) and (
            keras.distribution.distribution() is not None
        )

    def __enter__(self):
        if not self.active:
            return
        members = self.members
        trainable, non_trainable, optimizer, metrics = self.state

        def shardings(arrays):
            return [x.sharding for x in arrays]

        def with_members():
            extra = [x for m in members for x in m.hook_state()]
            return (
                shardings(trainable),
                shardings(non_trainable),
                shardings(optimizer),
                shardings(metrics) + shardings(extra),
            )

        self.model._get_state_sharding_spec = with_members

    def __exit__(self, *exc):
        if self.active:
            del self.model._get_state_sharding_spec


class _Chain:
    """The members attached to one model, and their train functions.

    The model's `train_function` becomes `dispatch`, which runs the train
    function built for the members active in the current call (compiled
    once per set of active members and cached). With no active member, the
    plain train function runs.
    """

    def __init__(self, model):
        self.members = []
        self.active = set()
        self.model = model
        self.user_step = vars(model).get("train_step")  # else the class's
        self.base_step = model.train_step
        self.functions = {}
        self.current_step = self.base_step
        self.torch = keras.backend.backend() == "torch"
        self.jax = keras.backend.backend() == "jax"
        if self.torch:
            # torch looks `model.train_step` up at every call.
            model.train_step = self.call_current_step

    def call_current_step(self, *args, **kwargs):
        return self.current_step(*args, **kwargs)

    def attach(self):
        if self.model.train_function != self.dispatch:
            # New, or the model was compiled again: build afresh.
            self.functions = {}
            self.model.train_function = self.dispatch

    def remove(self, member):
        self.members.remove(member)
        self.active.discard(member)
        self.functions = {
            k: f for k, f in self.functions.items() if member not in k
        }
        if self.members:
            return
        model = self.model
        if "train_step" in vars(model):
            del model.train_step
        if self.user_step is not None:
            model.train_step = self.user_step
        delattr(model, CHAIN_ATTR)
        model.make_train_function(force=True)

    def build(self, key, state=None):
        model = self.model
        step, counts = self.base_step, None
        if key and self.jax:
            step, counts = _jax_step(model, step, key)
        elif key:
            step = _in_place_step(step, key)
        if self.torch:
            model.make_train_function(force=True)
            return model.train_function, step

        def train_step(*args, **kwargs):  # a new function per build
            return step(*args, **kwargs)

        model.train_step = train_step
        try:
            members = key if counts is not None else ()
            with _sharded_state(model, members, state):
                model.make_train_function(force=True)  # captures train_step
        finally:
            del model.train_step
            if self.user_step is not None:
                model.train_step = self.user_step
        function = model.train_function
        if counts is not None:
            function = _jax_function(function, key, counts)
        return function, step

    def dispatch(self, *args, **kwargs):
        key = tuple(m for m in self.members if m in self.active)
        if key not in self.functions:
            state = args[0] if self.jax and args else None
            self.functions[key] = self.build(key, state)
            self.model.train_function = self.dispatch
        function, step = self.functions[key]
        self.current_step = step
        try:
            return function(*args, **kwargs)
        finally:
            self.current_step = self.base_step
