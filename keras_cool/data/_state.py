"""The saved state of a Sequence: `get_state` and `check_state`.

Version 2 (`VERSION`) records where to resume in the epoch's *global*
order (see `_order`), so a state saved by N processes (shards) resumes
with M: `position` is the number of batches of the global order before
the next one. A shard `(i, n)` that handed out `p` batches in order saves
`start + p * n`: the processes of a job are taken to be in step, as in
synchronous data-parallel training (each trained the same number of
batches), so the state of any one of them stands for all.
`num_batches` and `shuffle` must match (they define the global order);
`shard` records who saved it and is not checked. The worker count and
threads or processes never change the order.

Read too: version 1 (its `position` counted batches of its own shard from
the start of the epoch, so the global position is `position * n`), and
the unversioned `{"seed", "epoch", "position"}` dict of keras_cool before
versioning (a position of the current shard). Other versions are refused.
"""

from keras_cool.data import _order
from keras_cool.data._checks import check_int
from keras_cool.data._checks import check_shard

VERSION = 2
READS = (1, 2)
_POSITION_KEYS = ("seed", "epoch", "position")
_DATASET_KEYS = ("num_batches", "shuffle", "shard")
STATE_KEYS = ("version",) + _POSITION_KEYS + _DATASET_KEYS


def _shards(shard):
    return 1 if shard is None else shard[1]


def get_state(dataset, cursor):
    """The versioned state dict (see the module docstring)."""
    if cursor.complete(dataset):
        epoch, position = cursor.epoch + 1, 0
    else:
        epoch = cursor.epoch
        position = cursor.start + cursor.prefix() * _shards(dataset.shard)
    shard = None if dataset.shard is None else list(dataset.shard)
    return {
        "version": VERSION,
        "seed": dataset.seed,
        "epoch": epoch,
        "position": position,
        "num_batches": cursor.count(dataset),
        "shuffle": dataset.shuffle,
        "shard": shard,
    }


def _refuse(state):
    raise ValueError(
        f"set_state() expects the dict from get_state() with keys "
        f"{list(STATE_KEYS)}; received {state!r}."
    )


def check_state(dataset, state):
    """`(seed, epoch, global position)` of `state`, or a clear error."""
    if not isinstance(state, dict):
        _refuse(state)
    legacy = set(state) == set(_POSITION_KEYS)
    if not legacy:
        if "version" not in state:
            _refuse(state)
        if state["version"] not in READS:
            raise ValueError(
                f"set_state() received a state of version "
                f"{state['version']!r}; this keras_cool reads versions "
                f"{' and '.join(map(str, READS))}. Save it again with "
                "get_state() of a keras_cool that reads it, or resume with "
                "that keras_cool."
            )
        if set(state) != set(STATE_KEYS):
            raise ValueError(
                f"set_state() expects the dict from get_state() with keys "
                f"{list(STATE_KEYS)}; received keys {sorted(state)}."
            )
    for key in _POSITION_KEYS:
        check_int(f"state[{key!r}]", state[key], 0)
    epoch, position = int(state["epoch"]), int(state["position"])
    count = _order.total(dataset, epoch)
    if legacy:
        position *= _shards(dataset.shard)
    else:
        saved_shard = state["shard"]
        if saved_shard is not None:
            saved_shard = check_shard(saved_shard)
        here = {"num_batches": count, "shuffle": dataset.shuffle}
        for key, value in here.items():
            if state[key] != value:
                raise ValueError(
                    f"set_state(): the state was saved with {key}="
                    f"{state[key]!r}, but this Sequence has {key}="
                    f"{value!r}, so its position would point at other "
                    "batches. Build the Sequence as when the state was "
                    "saved (same length and shuffle; the shard and the "
                    "workers may differ)."
                )
        if state["version"] == 1:
            position *= _shards(saved_shard)
    if count is not None and position > count:
        raise ValueError(
            f"state['position']={state['position']} is past the end "
            f"of the epoch ({count} batches)."
        )
    return int(state["seed"]), epoch, position
