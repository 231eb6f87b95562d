"""The train-step hook on its own, with a small counting member."""

import keras
import numpy as np
from keras import ops

from keras_cool.callbacks import _train_step_hook
from keras_cool.callbacks._train_step_hook import CHAIN_ATTR

X = np.random.RandomState(0).rand(24, 3).astype("float32")
Y = np.random.RandomState(1).rand(24, 2).astype("float32")
STEPS = 3  # batches of 8


class Counter:
    """Counts the steps it ran in, and sums `variables` after each step."""

    def __init__(self, variables=()):
        self.variables = list(variables)
        self.count = keras.Variable(0, dtype="int32", trainable=False)
        self.total = keras.Variable(0.0, dtype="float32", trainable=False)
        self.live = None  # JAX: the state arrays after the last call

    def _sum(self, weights):
        total = ops.zeros((), "float32")
        for w in weights:
            total = total + ops.sum(ops.cast(w, "float32"))
        return total

    def update_in_place(self):
        self.count.assign(self.count.value + 1)
        self.total.assign(self._sum([v.value for v in self.variables]))

    def hook_variables(self):
        return self.variables

    def hook_state(self):
        return self.live or [self.count.value, self.total.value]

    def advance(self, state, weights):
        return [state[0] + 1, self._sum(weights)]

    def receive_state(self, state):
        self.live = state

    def steps(self):
        state = self.live or [self.count.value, self.total.value]
        return int(ops.convert_to_numpy(state[0]))

    def sum(self):
        state = self.live or [self.count.value, self.total.value]
        return float(ops.convert_to_numpy(state[1]))


class Attach(keras.callbacks.Callback):
    """Attaches members for one `fit`, as the EMA callback does."""

    def __init__(self, *members):
        super().__init__()
        self.members = members

    def on_train_begin(self, logs=None):
        for member in self.members:
            _train_step_hook.attach(self.model, member)

    def on_train_end(self, logs=None):
        for member in self.members:
            _train_step_hook.deactivate(self.model, member)


def make_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def fit(model, *members, epochs=1):
    callbacks = [Attach(*members)] if members else []
    model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, callbacks=callbacks)


def weights_sum(variables):
    return float(sum(np.sum(np.asarray(v.numpy())) for v in variables))


def test_member_runs_inside_every_step_after_the_optimizer():
    model = make_model()
    counter = Counter(model.trainable_variables)
    fit(model, counter, epochs=2)
    assert counter.steps() == 2 * STEPS
    # The member read the weights after the last optimizer step.
    np.testing.assert_allclose(
        counter.sum(), weights_sum(model.trainable_variables), rtol=1e-6
    )


def test_two_members_chain_and_each_runs_only_while_active():
    model = make_model()
    a, b = Counter(), Counter(model.trainable_variables[:1])
    fit(model, a)
    fit(model, a, b)
    assert (a.steps(), b.steps()) == (2 * STEPS, STEPS)
    fit(model, b)  # a stays attached, idle
    assert (a.steps(), b.steps()) == (2 * STEPS, 2 * STEPS)
    kernel = model.trainable_variables[0]
    np.testing.assert_allclose(b.sum(), weights_sum([kernel]), rtol=1e-6)
    assert getattr(model, CHAIN_ATTR).members == [a, b]


def test_fit_without_an_active_member_runs_the_plain_function():
    model = make_model()
    counter = Counter()
    fit(model, counter)
    before = [np.array(v.numpy()) for v in model.trainable_variables]
    fit(model)  # attached, not active
    assert counter.steps() == STEPS
    after = [np.array(v.numpy()) for v in model.trainable_variables]
    assert not np.allclose(before[0], after[0])  # it still trained
    chain = getattr(model, CHAIN_ATTR)
    assert chain.functions[()][1] is chain.base_step  # no member wrapped


def test_detach_gives_the_model_its_own_train_step_back():
    model = make_model()
    a, b = Counter(), Counter()
    fit(model, a, b)
    _train_step_hook.detach(model, a)
    assert hasattr(model, CHAIN_ATTR)  # b is still attached
    fit(model, b)
    assert (a.steps(), b.steps()) == (STEPS, 2 * STEPS)
    _train_step_hook.detach(model, b)
    assert not hasattr(model, CHAIN_ATTR)
    assert "train_step" not in vars(model)
    assert model.train_function is not None
    fit(model)
    assert (a.steps(), b.steps()) == (STEPS, 2 * STEPS)
    _train_step_hook.detach(model, b)  # detaching twice is harmless


def test_a_user_overridden_train_step_is_hooked_and_restored():
    model = make_model()
    own_step = model.train_step
    calls = []

    def user_step(*args, **kwargs):
        calls.append(1)  # at trace time when compiled, else every step
        return own_step(*args, **kwargs)

    model.train_step = user_step
    counter = Counter()
    fit(model, counter)
    assert calls and counter.steps() == STEPS
    _train_step_hook.detach(model, counter)
    assert vars(model)["train_step"] is user_step
    calls.clear()
    fit(model)
    assert calls  # the model's train function uses the user step again
    assert counter.steps() == STEPS
