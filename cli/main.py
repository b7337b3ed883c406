"""Entry point of the ``wafertk`` command."""

from __future__ import annotations

import sys

import click

from wafertk._version import __version__

from ._common import fail, install_signal_handlers, setup_logging

EPILOG = """\b
Examples:
  wafertk import npz wm811k_train.npz -o wafers.h5      # lossless pack -> wafers.h5
  wafertk import wm811k LSWMD.pkl -o wafers.h5 --labeled-only --partition Training
  wafertk info wafers.h5                                # counts, grids, lots, classes
  wafertk detect wafers.h5 -o out/                      # phase 1: good vs defective
  wafertk classify wafers.h5 -o out/                    # two-phase: phase 1 + pattern
  wafertk features wafers.h5 -o features.parquet --set density,radon,geometry
  wafertk train xgboost --data train.h5 -o models/xgb
  wafertk evaluate --model xgboost labeled.h5 -o report/
  wafertk models                                        # architectures, shipped models

Every command: -o/--output for what it writes, -q/--quiet, one summary line on success.
Exit codes: 0 success, 2 bad input (one line on stderr; --verbose for a traceback),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM); nothing partial is left behind.
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wafertk")
@click.option("-v", "--verbose", is_flag=True, help="More log output, and tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """wafertk: find and name defect patterns on semiconductor wafer maps.

    A wafer map is a die grid (0 = no die, 1 = pass, 2 = fail) stored in a wafers.h5 file
    (see docs/file-format.md). Every command is a thin layer over the Python API.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    setup_logging(verbose)


def _register() -> None:
    """Attach the command modules (each imports its heavy dependencies lazily).

    A module ``cli/NAME.py`` exports ``COMMANDS`` (top-level commands) and optionally
    ``TRAIN_COMMANDS`` (subcommands of ``wafertk train``).
    """
    import importlib

    from .model_cmds import train

    for name in ("data_cmds", "features_cmds", "model_cmds", "xgb_cmds", "cnn_cmds",
                 "inspect_cmds", "calibrate_cmds", "anomaly_cmds", "images_cmds",
                 "sweep_cmds"):
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        for command in getattr(mod, "COMMANDS", []):
            cli.add_command(command)
        for command in getattr(mod, "TRAIN_COMMANDS", []):
            train.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    click's own usage errors (unknown option, missing argument, bad choice) are printed as one
    ``wafertk: error: ...`` line with exit code 2, like every other user error.
    """
    install_signal_handlers()
    try:
        cli.main(args=argv, prog_name="wafertk", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("wafertk: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `wafertk` or `wafertk train`
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(0)
        cmd = exc.ctx.command_path if exc.ctx is not None else "wafertk"
        hint = f" (see '{cmd} --help')" if exc.ctx is not None else ""
        fail(f"{exc.format_message()}{hint}")
    except click.ClickException as exc:
        fail(exc.format_message())
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
