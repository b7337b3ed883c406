"""Output folders that appear whole or not at all, and the ``predictions.csv`` writer.

:class:`OutputFolder` gives an inspection run its own staging folder beside the destination,
then swaps it in as one unit: ``predictions.csv``, ``report.html`` and ``run.json`` always come
from the same run (a ``--no-report`` run does not leave an older report beside new
predictions). While a run is writing, it holds a lock beside the destination, so a second run
into the same folder fails at once with a clear message instead of silently losing one result.
Staging folders left behind by a killed run (SIGKILL, power loss) are removed by the next run
into the same folder (:func:`wafertk._atomic.atomic_path` does the staging and the swap).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
from pathlib import Path

import numpy as np

from wafertk._atomic import atomic_path
from wafertk.errors import WaferFileError

#: File in every finished output folder: the run's resolved settings. Also the marker that a
#: folder is a wafertk inspection output, which a later run may replace.
RUN_FILE = "run.json"
#: Files an inspection run writes; an existing folder holding anything else is not replaced.
OUTPUT_FILES = frozenset({"predictions.csv", "report.html", RUN_FILE})


class OutputFolder:
    """Stage an output folder and replace the destination with it as one unit.

    Parameters
    ----------
    path : str or os.PathLike
        The destination folder. If it exists it must be empty or a previous wafertk
        inspection output (holding only :data:`OUTPUT_FILES`): other contents are never
        deleted.

    Examples
    --------
    >>> with OutputFolder("out") as stage:            # doctest: +SKIP
    ...     (stage / "predictions.csv").write_text("...")
    ...     # "out" is replaced only if the block ends without an exception
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.given = Path(path)
        # a symbolic link to a folder: the folder it points to is replaced (the link stays)
        self.path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
        self.stage: Path | None = None
        self._lock_fd: int | None = None

    # ---------------------------------------------------------------- checks
    def check(self) -> None:
        """Fail early (before any work) if the destination cannot be an output folder."""
        p = self.path
        resolved = p.resolve()
        if (os.fspath(self.given) in ("", ".", "..") or resolved == Path.cwd().resolve()
                or resolved.parent == resolved):
            raise WaferFileError(self.given, "cannot replace the current folder or the root; "
                                 "give an output folder name (e.g. -o out)")
        if p.exists() and not p.is_dir():
            raise WaferFileError(p, "exists and is not a folder (the output is a folder)")
        if p.is_dir():
            other = sorted(x.name for x in p.iterdir() if x.name not in OUTPUT_FILES)
            if other:
                raise WaferFileError(
                    p, f"output folder holds files wafertk did not write ({other[0]}"
                    f"{', ...' if len(other) > 1 else ''}); choose a new or empty folder")

    @property
    def parent(self) -> Path:
        return self.path.parent if str(self.path.parent) else Path(".")

    @property
    def lock_path(self) -> Path:
        return self.parent / f".{self.path.name}.wafertk-lock"

    # ---------------------------------------------------------------- protocol
    def __enter__(self) -> Path:
        self.check()
        self.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            # staging, the swap and the removal of a killed run's staging folder:
            # wafertk._atomic.atomic_path, as for every other output
            self._staging = atomic_path(self.path, directory=True)
            self.stage = self._staging.__enter__()
        except BaseException:
            self._unlock()
            raise
        return self.stage

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._staging.__exit__(exc_type, exc, tb)
        finally:
            self.stage = None
            self._unlock()

    # ---------------------------------------------------------------- internals
    def _lock(self) -> None:
        import fcntl

        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise WaferFileError(self.given, f"cannot write in {self.parent} "
                                     f"({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise WaferFileError(
                        self.path, "another wafertk run is writing this output folder "
                        "(wait for it to finish, or choose another -o)") from None
                raise
            # the lock file may have been removed by the run that just finished: retry then
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.lock_path)
        os.close(self._lock_fd)
        self._lock_fd = None


def write_run_file(folder: Path, info: dict) -> Path:
    """``run.json``: the run's resolved settings and counts."""
    path = folder / RUN_FILE
    path.write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
    return path


_FLOAT_COLS = frozenset({"p_defect", "confidence", "p_top1", "p_top2", "p_top3"})
_FLAG_COLS = frozenset({"defective"})


def _format(name: str, values: np.ndarray) -> np.ndarray:
    """One column as strings: floats with 4 decimals, NaN and -1 flags as empty cells."""
    v = np.asarray(values)
    if name in _FLOAT_COLS:
        f = v.astype(np.float64)
        s = np.char.mod("%.4f", f).astype(object)
        s[~np.isfinite(f)] = ""
        return s
    s = v.astype(str).astype(object)
    if name in _FLAG_COLS:
        s[v.astype(np.int64) < 0] = ""
    return s


class PredictionWriter:
    """Write prediction columns batch by batch as CSV (the :mod:`csv` module does the quoting).

    Parameters
    ----------
    fh : text file
        Opened with ``newline=""``.
    columns : list of str
        Header and column order.
    header : bool, default True
        Write the header row first (False: rows only, e.g. one range of a distributed run
        whose rows are appended after the header by :mod:`wafertk.distributed`).
    """

    def __init__(self, fh, columns: list[str], *, header: bool = True) -> None:
        self.columns = list(columns)
        self._w = csv.writer(fh, lineterminator="\n")
        if header:
            self._w.writerow(self.columns)
        self.n = 0

    def write(self, cols: dict[str, np.ndarray]) -> None:
        """Append the rows of one batch."""
        parts = [_format(c, cols[c]) for c in self.columns]
        self._w.writerows(zip(*parts, strict=True))
        self.n += len(parts[0]) if parts else 0
