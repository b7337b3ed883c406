import os
import stat

import pytest

from wafertk._atomic import atomic_path


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _expected(bits: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return bits & ~umask


def test_file_is_renamed_on_success_with_usual_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp != target and tmp.parent == target.parent
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert _mode(target) == _expected(0o666)
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_directory_replaces_old_one_with_usual_permissions(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.json").write_text("{}")
    with atomic_path(target, directory=True) as tmp:
        (tmp / "new.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["new.json"]
    assert _mode(target) == _expected(0o777)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize("directory", [False, True])
def test_failure_leaves_nothing_and_keeps_the_original(tmp_path, directory):
    target = tmp_path / "out"
    if directory:
        target.mkdir()
        (target / "keep").write_text("x")
    else:
        target.write_text("keep")
    with pytest.raises(RuntimeError), atomic_path(target, directory=directory) as tmp:
        (tmp / "partial" if directory else tmp).write_text("partial")
        raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert ((target / "keep").read_text() if directory else target.read_text()) in ("x", "keep")


def test_failed_rename_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()  # a file cannot replace a folder
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("done")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_temporary_files_of_killed_writers_are_removed_by_the_next(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "out.h5"
    # a writer that died (its pid no longer runs) and one that is still writing (this process)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / f".out.h5.{dead}.abc123.tmp").write_text("partial")
    (tmp_path / f".out.h5.{dead}.dir.tmp").mkdir()
    live = tmp_path / f".out.h5.{os.getpid()}.xyz.tmp"
    live.write_text("being written")
    other = tmp_path / ".other.h5.1.abc.tmp"
    other.write_text("not ours")
    with atomic_path(target) as tmp:
        tmp.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".other.h5.1.abc.tmp", live.name, "out.h5"])


def test_a_symlinked_destination_replaces_the_file_it_points_to(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with atomic_path(link) as tmp:
        tmp.write_text("new")
    assert link.is_symlink() and real.read_text() == "new"
