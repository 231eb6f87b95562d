"""Starting worker processes that never import `__main__`.

The dataset travels to a worker by value (`cloudpickle`, see
`_resources.dumps_for_workers`), and the worker's entry point lives in
keras_cool, so a worker needs nothing from the main module. Python's
"spawn" and "forkserver" start methods would still run it in every child
(`multiprocessing.spawn.prepare` imports the main script as `__mp_main__`),
and the fork server preloads it by default: a script without an
`if __name__ == "__main__":` guard would then run its top level again (in a
multi-process JAX job, `keras.distribution.initialize` a second time), and
one without a file (a notebook, `python -`) could not be imported at all.

- `preload_forkserver(context)`: the fork server imports keras_cool (and
  so Keras) once, and not `__main__`;
- `start(process)`: `process.start()` with the main module left out of
  the child's preparation data (only for this call, in this thread).
"""

import functools
import multiprocessing.spawn
import threading

_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_LOCAL = threading.local()
_INSTALL_LOCK = threading.Lock()


def preload_forkserver(context):
    """Have the fork server import keras_cool once, and not `__main__`.

    Workers forked from it then start in a fraction of a second instead of
    importing Keras and its backend again. This only takes effect if the
    fork server of this process is not running yet.
    """
    import multiprocessing.forkserver  # POSIX only

    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    modules = list(getattr(server, "_preload_modules", None) or [])
    wanted = [m for m in modules if m != "__main__"]
    if "keras_cool" not in wanted:
        wanted.append("keras_cool")
    if wanted != modules:
        context.set_forkserver_preload(wanted)


def _install():
    """Wrap `multiprocessing.spawn.get_preparation_data` once.

    The wrapper changes nothing unless `start` runs in this thread; then
    it drops the keys that make the child import the main module.
    """
    with _INSTALL_LOCK:
        original = multiprocessing.spawn.get_preparation_data
        if getattr(original, "_kc_without_main", False):
            return

        @functools.wraps(original)
        def get_preparation_data(*args, **kwargs):
            data = original(*args, **kwargs)
            if getattr(_LOCAL, "starting", False):
                for key in _MAIN_KEYS:
                    data.pop(key, None)
            return data

        get_preparation_data._kc_without_main = True
        multiprocessing.spawn.get_preparation_data = get_preparation_data


def start(process):
    """`process.start()`; a spawned or forkserver child skips `__main__`."""
    _install()
    _LOCAL.starting = True
    try:
        process.start()
    finally:
        _LOCAL.starting = False
