"""Large arrays of a batch travel from a worker process in shared memory.

A worker copies every NumPy array of at least `MIN_BYTES` of a batch into
one *block* (`multiprocessing.shared_memory.SharedMemory`) and sends a
small `Packed` description through its pipe instead of pickling the
arrays. The main process maps the block once, removes its name from
`/dev/shm` at once (the memory lives on while both processes map it), and
hands out arrays that are views of the block, without a copy. When the
last of them is garbage collected, the block goes back to its worker,
which reuses it for a later batch: a pool of reusable blocks per worker,
grown only while every block is in use.

Blocks are named `<prefix>_<worker>_<number>`, numbered from 0 in each
worker, with a prefix unique to the pool, so the main process can remove
the names it has not mapped yet (a worker killed between creating a block
and sending it, results never read) when the pool closes: it tries the
next numbers of each worker until one is missing (`Blocks.unlink_rest`).
If the main process itself is killed, Python's resource tracker removes
what is left. Small arrays keep the pipe: below `MIN_BYTES` pickling them
costs less than the block bookkeeping (docs/results/data_loading.md).
"""

import collections
import os
import secrets
import threading
from multiprocessing import resource_tracker
from multiprocessing import shared_memory

import numpy as np

# Arrays of at least this many bytes go through shared memory; None: none.
# The environment variable KERAS_COOL_SHM_MIN_BYTES overrides it when a
# pool starts (a number of bytes, or "off").
MIN_BYTES = 256 << 10
ENV = "KERAS_COOL_SHM_MIN_BYTES"
SHM_DIR = "/dev/shm"
_ALIGN = 64


def threshold():
    """The size from which arrays go through shared memory (None: never)."""
    value = os.environ.get(ENV)
    if value is None:
        return MIN_BYTES
    if value.strip().lower() in ("off", "none", ""):
        return None
    try:
        return max(0, int(value))
    except ValueError:
        raise ValueError(
            f"{ENV}={value!r}: give a number of bytes (arrays at least "
            'this large go through shared memory) or "off".'
        ) from None


def new_prefix():
    """A block-name prefix unique to one pool (short: macOS allows 31)."""
    return f"kc{os.getpid()}_{secrets.token_hex(3)}"


class _Slot:
    """Where one array of a packed batch lies in its block."""

    __slots__ = ("offset", "shape", "dtype")

    def __init__(self, offset, shape, dtype):
        self.offset = offset
        self.shape = shape
        self.dtype = dtype

    def __reduce__(self):
        return (_Slot, (self.offset, self.shape, self.dtype))


class Packed:
    """A batch whose large arrays are `_Slot`s of block `number`."""

    def __init__(self, name, number, structure):
        self.name = name
        self.number = number
        self.structure = structure

    def __reduce__(self):
        return (Packed, (self.name, self.number, self.structure))


def _map(fn, value):
    """`fn` on every leaf of tuples, lists and dicts (types kept)."""
    if isinstance(value, dict):
        return type(value)((k, _map(fn, v)) for k, v in value.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_map(fn, v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_map(fn, v) for v in value)
    return fn(value)


def _large(value, threshold):
    return (
        isinstance(value, np.ndarray)
        and not value.dtype.hasobject
        and value.nbytes >= threshold
    )


class WorkerBlocks:
    """A worker's pool of blocks: `pack` a batch, `release` block numbers.

    `pack` runs in the worker's feeder thread and `release` in its main
    loop, hence the lock.
    """

    def __init__(self, prefix, wid, threshold):
        self.prefix = prefix
        self.wid = wid
        self.threshold = threshold
        self.blocks = {}  # number -> SharedMemory
        self.free = set()
        self.lock = threading.Lock()

    def pack(self, batch):
        """`batch`, with its large arrays moved into a block."""
        if self.threshold is None:
            return batch
        arrays = []

        def find(value):
            if _large(value, self.threshold):
                arrays.append(value)
            return value

        _map(find, batch)
        if not arrays:
            return batch
        size = sum(-(-a.nbytes // _ALIGN) * _ALIGN for a in arrays)
        number, block = self._take(size)
        offsets = {}
        offset = 0
        for array in arrays:
            view = np.ndarray(
                array.shape, array.dtype, buffer=block.buf, offset=offset
            )
            np.copyto(view, array, casting="no")
            del view  # no buffer export may outlive this call
            offsets[id(array)] = offset
            offset += -(-array.nbytes // _ALIGN) * _ALIGN

        def slot(value):
            if id(value) in offsets and _large(value, self.threshold):
                return _Slot(offsets[id(value)], value.shape, value.dtype.str)
            return value

        return Packed(block.name, number, _map(slot, batch))

    def _take(self, size):
        with self.lock:
            fits = [n for n in self.free if self.blocks[n].size >= size]
            if fits:
                number = min(fits, key=lambda n: self.blocks[n].size)
                self.free.discard(number)
                return number, self.blocks[number]
            number = len(self.blocks)
        if os.path.isdir(SHM_DIR):
            # A write to a block that tmpfs cannot back is a SIGBUS, not an
            # error: keep the pipe unless there is room to spare.
            stat = os.statvfs(SHM_DIR)
            if stat.f_bavail * stat.f_frsize < 2 * size:
                raise OSError(f"{SHM_DIR} has no room for {size} bytes")
        name = f"{self.prefix}_{self.wid}_{number}"
        block = shared_memory.SharedMemory(name, create=True, size=size)
        with self.lock:
            self.blocks[number] = block
        return number, block

    def release(self, numbers):
        with self.lock:
            self.free.update(n for n in numbers if n in self.blocks)

    def close(self):
        for block in self.blocks.values():
            try:
                block.close()
            except BufferError:
                pass
        self.blocks = {}


class _Lease:
    """Held by every array of one packed batch; frees the block when the
    last of them is collected (in whatever thread that happens)."""

    def __init__(self, released, wid, number, block):
        self.released = released
        self.wid = wid
        self.number = number
        self.block = block  # keeps the mapping alive

    def __del__(self):
        self.released.append((self.wid, self.number))


class _View:
    """One array of a block, for `numpy.asarray` (its base is this)."""

    def __init__(self, address, slot, lease):
        self.lease = lease
        self.__array_interface__ = {
            "shape": tuple(slot.shape),
            "typestr": slot.dtype,
            "data": (address + slot.offset, False),
            "version": 3,
        }


class Blocks:
    """The main process's side: map blocks, unpack batches, clean up."""

    def __init__(self, prefix, threshold):
        # Workers must share this process's resource tracker (it starts
        # lazily, and a worker forked before it would start its own).
        resource_tracker.ensure_running()
        self.prefix = prefix
        self.threshold = threshold
        self.mapped = {}  # name -> (SharedMemory, address)
        self.seen = collections.defaultdict(int)  # wid -> next number
        self.released = collections.deque()  # (wid, number), any thread

    def unpack(self, wid, packed):
        """The batch of `packed`: arrays that are views of its block."""
        block, address = self._map(wid, packed)
        lease = _Lease(self.released, wid, packed.number, block)

        def view(value):
            if isinstance(value, _Slot):
                return np.asarray(_View(address, value, lease))
            return value

        return _map(view, packed.structure)

    def discard(self, wid, packed):
        """A packed batch nobody waits for: its block is free again."""
        self._map(wid, packed)
        self.released.append((wid, packed.number))

    def _map(self, wid, packed):
        self.seen[wid] = max(self.seen[wid], packed.number + 1)
        entry = self.mapped.get(packed.name)
        if entry is None:
            block = shared_memory.SharedMemory(packed.name)
            _unlink(block)  # mapped on both sides: the name can go
            probe = np.frombuffer(block.buf, np.uint8)
            entry = (block, probe.ctypes.data)
            del probe
            self.mapped[packed.name] = entry
        return entry

    def take_released(self):
        """{wid: [numbers]} released since the last call."""
        out = collections.defaultdict(list)
        while True:
            try:
                wid, number = self.released.popleft()
            except IndexError:
                return out
            out[wid].append(number)

    def unlink_rest(self, wids):
        """Remove the names of blocks never mapped here (workers stopped).

        Each worker numbers its blocks 0, 1, ... without gaps, so the
        names left are those not mapped below the last one seen (a batch
        that failed to pickle), and the numbers after it, up to the first
        that does not exist.
        """
        for wid in wids:
            for number in range(self.seen[wid]):  # created, never sent
                name = f"{self.prefix}_{wid}_{number}"
                if name not in self.mapped:
                    _remove(name)
            number = self.seen[wid]
            while _remove(f"{self.prefix}_{wid}_{number}"):
                number += 1

    def close(self):
        """Forget the mappings: each is unmapped once no array uses it."""
        self.mapped = {}


def _unlink(block):
    try:
        block.unlink()
    except FileNotFoundError:
        pass


def _remove(name):
    """Removes the name of block `name`; False if there is none.

    A worker killed between creating a block and giving it a size leaves
    an empty one, which `SharedMemory` cannot map to unlink: on Linux its
    file in `/dev/shm` is removed directly (it was never registered with
    the resource tracker). Elsewhere the empty name stays; it holds no
    memory.
    """
    try:
        block = shared_memory.SharedMemory(name)
    except FileNotFoundError:
        return False
    except ValueError:  # "cannot mmap an empty file"
        if not os.path.isdir(SHM_DIR):
            return False
        try:
            os.unlink(os.path.join(SHM_DIR, name))
        except FileNotFoundError:
            pass
        return True
    block.close()
    _unlink(block)
    return True
