"""The memory policy of a worker process: keep freed memory for reuse.

In a fresh worker process that has imported Keras (measured on the JAX
backend), glibc hands every large freed block back to the system, so each
big NumPy temporary of the next batch is faulted in again, page by page
(thousands of minor page faults per batch, up to half the batch time).
`keep_freed_memory()` asks glibc to keep freed memory in the process
(`mallopt(M_TRIM_THRESHOLD)`) and to serve large blocks from the heap
(`mallopt(M_MMAP_THRESHOLD)`), as `MALLOC_TRIM_THRESHOLD_` and
`MALLOC_MMAP_THRESHOLD_` would. A worker then keeps the memory of its
largest batch until it exits.

Elsewhere than glibc (macOS, Windows, musl) it does nothing. A user who
sets either `MALLOC_*_THRESHOLD_` variable keeps their setting.
"""

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory"]

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed memory at the top
MMAP_THRESHOLDS = (256 << 20, 32 << 20)  # first accepted; glibc caps it
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

# Whether this process applied the policy (read by the tests).
applied = False


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory():
    """Apply the policy in this process; True where it was applied."""
    global applied
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    libc = _glibc()
    if libc is None:
        return False
    if not libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        return False
    applied = any(
        libc.mallopt(M_MMAP_THRESHOLD, value) for value in MMAP_THRESHOLDS
    )
    return applied
