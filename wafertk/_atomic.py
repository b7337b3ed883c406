"""Write outputs under a temporary name and rename them when complete."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination (file, or folder when ``directory`` is true).
    directory : bool, default False
        Create a temporary folder instead of reserving a file name.

    Yields
    ------
    pathlib.Path
        Where the caller writes. On an exception it is removed and ``path`` is left untouched.
    """
    final = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    parent = final.parent if str(final.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    prefix = f".{final.name}.{os.getpid()}."
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    try:
        umask = os.umask(0)
        os.umask(umask)
        # mkdtemp/mkstemp create owner-only entries; give the usual permissions
        if tmp.exists():
            os.chmod(tmp, (0o777 if directory else 0o666) & ~umask)
        if directory and final.is_dir():
            backup = final.with_name(f".{final.name}.old")
            _remove(backup)
            final.rename(backup)
            tmp.rename(final)
            _remove(backup)
        else:
            os.replace(tmp, final)
    except BaseException:  # e.g. the destination is a folder: leave nothing behind
        _remove(tmp)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale(final: str | os.PathLike) -> list[Path]:
    """Remove temporary files/folders of ``final`` left by writers that were killed.

    Temporary names are ``.NAME.PID.RANDOM.tmp``; those whose process no longer runs are
    removed (a killed run cannot clean up after itself; SIGKILL cannot be handled).

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    removed = []
    if not parent.is_dir():
        return removed
    head = f".{final.name}."
    for p in parent.glob(f".{glob.escape(final.name)}.*.tmp"):
        pid = p.name[len(head):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(p)
            removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
