"""Shared command-line plumbing: error handling, logging, config overrides."""

from __future__ import annotations

import functools
import logging
import sys

import click

from wafertk.errors import WafertkError

log = logging.getLogger("wafertk")


def setup_logging(verbose: bool) -> None:
    """Quiet by default (warnings only); ``--verbose`` shows progress details and debug logs."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("wafertk").setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        import os

        # TensorFlow's C++ logging, read when (if) TensorFlow is imported by a command
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fail(message: str) -> None:
    """Print ``wafertk: error: message`` as one line on standard error and exit with code 2."""
    click.echo(f"wafertk: error: {message}", err=True)
    sys.exit(2)


def handle_errors(func):
    """Turn user errors into one line on stderr and exit code 2 (traceback with --verbose)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        verbose = bool((ctx.find_root().obj or {}).get("verbose"))
        try:
            return func(*args, **kwargs)
        except WafertkError as exc:
            if verbose:
                raise
            fail(str(exc))
        except OSError as exc:  # disk full, permission denied, ... while reading or writing
            if verbose:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}")
        except MemoryError:
            if verbose:
                raise
            fail("out of memory: try a smaller --batch-size")
        except KeyboardInterrupt:
            click.echo("wafertk: interrupted", err=True)
            sys.exit(130)

    return wrapper
