"""Atomic file writes, shared by the callbacks and `keras_cool.utils`.

`atomic_write` writes to a hidden temporary file in the target's folder and
renames it over the target (`os.replace`, atomic on one file system), so a
crash or an error during the write leaves the previous file intact. The
temporary name starts with "." and ends in ".tmp-XXXXXXXX", so it never
matches a `*.png` (or any `*.<suffix>`) glob; it is removed on any
exception, `KeyboardInterrupt` included. The final file gets the
permissions a plain `open(path, "w")` gives (`0o666` less the umask), as
`model.save` does, not `mkstemp`'s 0600.
"""

import os
import shutil
import tempfile

__all__ = ["atomic_write"]


def _umask():
    """The process umask; read from /proc on Linux (no global change)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write_fn, as_path=False):
    """Writes `path` atomically with `write_fn`; returns `path`.

    Args:
        path: the file to (over)write; its folder is created if missing.
        write_fn: `write_fn(file)` writing bytes to a binary file object,
            or, with `as_path=True`, `write_fn(temp_path)` writing the file
            itself (e.g. `model.save_weights`). `temp_path` has the same
            base name as `path` (so suffix checks pass) and lies in a
            hidden temporary folder next to `path`.
        as_path: see `write_fn`.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    prefix = f".{os.path.basename(path)}.tmp-"
    if as_path:
        scratch = tempfile.mkdtemp(prefix=prefix, dir=folder)
        tmp = os.path.join(scratch, os.path.basename(path))
    else:
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=folder)
        scratch = None
    try:
        if as_path:
            write_fn(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                write_fn(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if scratch is None and os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return path
