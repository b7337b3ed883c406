from click.testing import CliRunner

import wafertk
from wafertk.cli.main import cli


def test_help_has_examples_and_version():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    assert "Examples:" in r.output and "wafertk classify wafers.h5" in r.output
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and wafertk.__version__ in r.output


def test_models_lists_registry():
    r = CliRunner().invoke(cli, ["models"])
    assert r.exit_code == 0 and "wafer_cnn_detector" in r.output


def _commands(group, path=()):
    import click

    for name, cmd in group.commands.items():
        yield path + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + (name,))


def test_help_one_liners_are_whole_sentences():
    """``wafertk --help`` lists each command with a line that is not cut off mid-sentence."""
    import click

    groups = [cli] + [c for _, c in _commands(cli) if isinstance(c, click.Group)]
    for group in groups:
        limit = 80 - 6 - max(map(len, group.commands))  # what click's 80-column listing fits
        for name, cmd in group.commands.items():
            line = cmd.get_short_help_str(limit=limit)
            assert line and not line.endswith("..."), (name, line)


def test_every_writing_command_has_output_and_quiet():
    writers = {("detect",), ("classify",), ("features",), ("evaluate",), ("import", "npz"),
               ("import", "wm811k"), ("train", "detector"), ("train", "classifier"),
               ("train", "xgboost")}
    seen = set()
    for path, cmd in _commands(cli):
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        if path in writers:
            seen.add(path)
            assert {"-o", "--output", "--out", "-q", "--quiet"} <= opts, (path, opts)
    assert seen == writers
