"""Exceptions raised by wafertk.

Every error a user can cause (bad file, bad value, unknown name) is a :class:`WafertkError`.
The command line turns it into one line on standard error and exit code 2.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


class WafertkError(Exception):
    """Base class of the errors a user can cause; the CLI prints them as one line."""


class WaferFileError(WafertkError, ValueError):
    """A file that cannot be used: missing, unreadable, wrong schema or bad values.

    Parameters
    ----------
    path : str or os.PathLike
        The offending file.
    problem : str
        What is wrong with it, in a few words.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelFileError(WaferFileError):
    """A model file or folder that is missing, corrupt, of the wrong kind or incompatible."""


class ConfigError(WafertkError, ValueError):
    """A configuration file or option that is invalid (unknown key, bad value)."""


class UnknownNameError(WafertkError, KeyError):
    """An unknown registered name (model, feature set, class); the message suggests close ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: object, known: Iterable[str], n: int = 1) -> str:
    """The hint appended to an unknown-name message: ``" (did you mean 'x'?)"`` or ``""``.

    Parameters
    ----------
    name : object
        What the user wrote.
    known : iterable of str
        The valid names.
    n : int, default 1
        How many close names to suggest at most.

    Returns
    -------
    str
    """
    import difflib

    close = difflib.get_close_matches(str(name), list(known), n=n)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
