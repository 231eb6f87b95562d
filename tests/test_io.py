import fnmatch
import os

import pytest

from keras_cool._io import atomic_write


def _plain_write_mode(folder):
    plain = os.path.join(folder, "plain.bin")
    with open(plain, "w") as f:
        f.write("x")
    mode = os.stat(plain).st_mode & 0o777
    os.remove(plain)
    return mode


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
@pytest.mark.parametrize("as_path", [False, True])
def test_mode_matches_a_plain_write(tmp_path, umask, as_path):
    old = os.umask(umask)
    try:
        expected = _plain_write_mode(tmp_path)
        path = tmp_path / "out.png"
        if as_path:
            atomic_write(path, lambda p: open(p, "wb").close(), as_path=True)
        else:
            atomic_write(path, lambda f: f.write(b"data"))
    finally:
        os.umask(old)
    assert expected == 0o666 & ~umask
    assert os.stat(path).st_mode & 0o777 == expected


def test_writes_bytes_and_creates_the_folder(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"
    assert atomic_write(path, lambda f: f.write(b"hello")) == str(path)
    assert path.read_bytes() == b"hello"
    assert os.listdir(path.parent) == ["out.bin"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("as_path", [False, True])
def test_crash_keeps_previous_file_and_no_temp(tmp_path, error, as_path):
    path = tmp_path / "grid.png"
    path.write_bytes(b"previous")
    seen = []

    def write(target):
        if as_path:
            seen.append(target)
        else:
            seen.extend(set(os.listdir(tmp_path)) - {"grid.png"})
        if as_path:
            with open(target, "wb") as f:
                f.write(b"half")
        else:
            target.write(b"half")
        raise error("crash")

    with pytest.raises(error):
        atomic_write(path, write, as_path=as_path)
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["grid.png"]
    assert seen and not os.path.exists(os.path.join(tmp_path, seen[0]))


def test_temp_name_is_hidden_next_to_target_and_not_globbed(tmp_path):
    names = []

    def write(f):
        names.extend(os.listdir(tmp_path))  # the temp file, while written
        f.write(b"x")

    atomic_write(tmp_path / "frame.png", write)
    assert len(names) == 1
    base = names[0]
    assert base.startswith(".frame.png.tmp-")
    assert not fnmatch.fnmatch(base, "*.png")


def test_path_mode_keeps_the_suffix_and_hides_the_folder(tmp_path):
    paths = []

    def write(p):
        paths.append(p)
        with open(p, "wb") as f:
            f.write(b"w")

    target = tmp_path / "best.weights.h5"
    atomic_write(target, write, as_path=True)
    tmp = paths[0]
    assert os.path.basename(tmp) == "best.weights.h5"  # suffix checks pass
    folder = os.path.relpath(os.path.dirname(tmp), tmp_path)
    assert folder.startswith(".best.weights.h5.tmp-")
    assert not fnmatch.fnmatch(folder, "*.h5")
    assert os.listdir(tmp_path) == ["best.weights.h5"]
    assert target.read_bytes() == b"w"


def test_only_io_calls_mkstemp():
    root = os.path.join(os.path.dirname(__file__), "..", "keras_cool")
    users = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    if "mkstemp" in f.read():
                        users.append(name)
    assert users == ["_io.py"]
