"""Shared command-line plumbing: options every command has, error handling, logging, summaries.

Every command:

* takes ``-o/--output`` (``--out`` kept as an alias) for what it writes, and ``-q/--quiet``;
* checks its input and output paths (:func:`check_input_file`, :func:`check_output`) before
  loading any model, so a typo costs milliseconds, not a TensorFlow start-up;
* imports TensorFlow through :func:`import_tensorflow`, which keeps TensorFlow's C++ start-up
  lines (absl, oneDNN, CPU-feature notes) off standard error unless ``--verbose``;
* ends with one summary line from :func:`summary` (``wrote PATH: counts in 1.2 s``);
* turns user errors into one ``wafertk: error: ...`` line on standard error and exit code 2.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import time
from pathlib import Path

import click

from wafertk.errors import WaferFileError, WafertkError

log = logging.getLogger("wafertk")


def setup_logging(verbose: bool) -> None:
    """Quiet by default (warnings only); ``--verbose`` shows progress details and debug logs."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("wafertk").setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        # TensorFlow's C++ logging, read when (if) TensorFlow is imported by a command. Not
        # enough alone (absl writes some lines before it reads this): see import_tensorflow.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


def verbose() -> bool:
    """Whether the root command got ``--verbose``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and (ctx.find_root().obj or {}).get("verbose"))


# ------------------------------------------------------------------------------- options
def output_option(help: str, *, required: bool = True):
    """``-o/--output PATH`` (alias ``--out``), stored as ``output`` (a :class:`Path`).

    No click type checks: :func:`check_output` reports a wrong kind of path as one line.
    """
    return click.option("-o", "--output", "--out", "output", required=required,
                        type=click.Path(path_type=Path), help=help)


def quiet_option(func):
    """``-q/--quiet``: no summary line and no progress bar."""
    return click.option("-q", "--quiet", is_flag=True,
                        help="No summary line and no progress bar.")(func)


def scheduler_option(func):
    """``--scheduler ADDRESS|local[:N]``: run on a Dask cluster (:mod:`wafertk.distributed`)."""
    return click.option(
        "--scheduler", "scheduler", default=None, metavar="ADDRESS|local[:N]",
        help="Run on a Dask cluster: a running scheduler's address (tcp://host:8786) or "
             "local[:N] for N local worker processes started for this run (needs "
             "pip install 'wafertk[dask]'; docs/scale-out.md).")(func)


def _quiet_dask() -> None:
    """Dask's own INFO lines (cluster start, workers joining) off standard error unless
    ``--verbose``: a command prints its one summary line."""
    if verbose():
        return
    # read by dask's configuration when (if) distributed is imported
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")


def expand_wafer_inputs(wafers, scheduler: str | None):
    """The input paths of a command taking ``WAFERS...`` (files or globs), checked.

    Returns None for the plain single-process case (one existing path, no scheduler): the
    command then runs exactly as before. Otherwise the expanded list, each path checked with
    :func:`check_input_file`, and ``--scheduler`` parsed (so a bad value fails first).
    """
    import glob

    wafers = list(wafers)
    if not wafers:
        raise WafertkError("no input file given (WAFERS: one or more files or globs)")
    if scheduler is not None:
        from wafertk.distributed import parse_scheduler

        parse_scheduler(scheduler)
        _quiet_dask()
    if scheduler is None and len(wafers) == 1 and (
            Path(wafers[0]).exists() or not glob.has_magic(str(wafers[0]))):
        return None
    from wafertk.distributed import expand_inputs

    paths = expand_inputs(wafers)
    for p in paths:
        check_input_file(p)
    return paths


def summary(path: str | os.PathLike, details: str, seconds: float) -> str:
    """The one summary line every command prints: ``wrote PATH: DETAILS in 1.2 s``."""
    return f"wrote {path}: {details} in {seconds:.1f} s"


def echo_summary(quiet: bool, path, details: str, t0: float) -> None:
    """Print :func:`summary` (time since ``t0`` from :func:`time.perf_counter`) unless quiet."""
    if not quiet:
        click.echo(summary(path, details, time.perf_counter() - t0))


# ------------------------------------------------------------------------------- paths
def check_input_file(path: str | os.PathLike, what: str = "wafers.h5 file") -> Path:
    """An existing, readable file, or a one-line error naming it."""
    p = Path(path)
    if not p.exists():
        raise WaferFileError(p, "no such file")
    if p.is_dir():
        raise WaferFileError(p, f"is a folder, expected a {what}")
    if not os.access(p, os.R_OK):
        raise WaferFileError(p, "permission denied")
    return p


def check_output(path: str | os.PathLike, *, folder: bool, inputs=(),
                 marker: str | None = None) -> Path:
    """Check that ``path`` can be written as an output folder (``folder``) or file.

    Nothing is created; the error names the path: an existing path of the other kind, a
    device, FIFO or other special file, the same file as one of ``inputs``, a parent that is a
    file or not writable, or (with ``marker``) an existing non-empty folder without that file,
    i.e. not an earlier output of the same command, whose contents would be lost.
    """
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise WaferFileError(p, "exists and is not a folder (the output is a folder)")
    if not folder and p.is_dir():
        raise WaferFileError(p, "is a folder (the output is a file)")
    if not folder and p.exists() and not p.is_file():
        raise WaferFileError(p, "is not a regular file (a device, FIFO or socket); the output "
                             "is a new file")
    for src in inputs:
        if src is not None and Path(src).exists() and p.exists() and os.path.samefile(src, p):
            raise WaferFileError(p, "is also the input: the output would overwrite it")
    if folder and marker and p.is_dir() and any(p.iterdir()) and not (p / marker).exists():
        first = sorted(x.name for x in p.iterdir())[0]
        raise WaferFileError(p, f"folder holds files wafertk did not write ({first}, ...); "
                             "choose a new or empty folder")
    parent = p.parent if str(p.parent) else Path(".")
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise WaferFileError(parent, "is a file, cannot create an output inside it")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise WaferFileError(p, f"cannot write here: {parent} is not writable (permission "
                             "denied)")
    return p


# ------------------------------------------------------------------------------- TensorFlow
def import_tensorflow() -> None:
    """Import TensorFlow and Keras with the C++ start-up lines kept off standard error.

    absl and oneDNN write to file descriptor 2 from C++ during the import, before (or without
    reading) ``TF_CPP_MIN_LOG_LEVEL``, so the descriptor itself is pointed at a temporary file
    for the duration of the import; what was written is logged at DEBUG level (shown with
    ``--verbose``, where nothing is redirected).
    """
    if "tensorflow" in sys.modules or verbose():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.constant(0)  # device and CPU-feature initialisation also log once
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode("utf-8", "replace").strip()
    if text:
        log.debug("TensorFlow start-up output:\n%s", text)


# ------------------------------------------------------------------------------- errors
def fail(message: str, *, traceback: bool = False) -> None:
    """Print ``wafertk: error: message`` as one line on standard error and exit with code 2.

    With ``traceback`` (``--verbose``) the traceback of the exception being handled comes
    first; the exit code stays 2.
    """
    if traceback:
        import traceback as tb

        tb.print_exc()
    click.echo(f"wafertk: error: {' '.join(str(message).split())}", err=True)
    sys.exit(2)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that staged outputs are cleaned up as on Ctrl-C."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in a subprocess test
    raise Terminated()


def install_signal_handlers() -> None:
    """Handle SIGTERM like SIGINT: unwind (removing staged outputs), exit 143."""
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (embedded use)
        pass


def handle_errors(func):
    """Turn user errors into one line on stderr and exit code 2 (traceback with --verbose)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        loud = verbose()
        try:
            return func(*args, **kwargs)
        except WafertkError as exc:
            fail(str(exc), traceback=loud)
        except BrokenPipeError:  # `wafertk models | head`: the reader left, nothing to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except OSError as exc:  # disk full, permission denied, ... while reading or writing
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}", traceback=loud)
        except MemoryError:
            fail("out of memory: try a smaller --batch-size", traceback=loud)
        except KeyboardInterrupt:
            click.echo("wafertk: interrupted", err=True)
            sys.exit(130)
        except Terminated:
            click.echo("wafertk: terminated", err=True)
            sys.exit(143)

    return wrapper
