from click.testing import CliRunner

import wafertk
from wafertk.cli.main import cli


def test_help_has_examples_and_version():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    assert "Examples:" in r.output and "wafertk classify --two-phase" in r.output
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and wafertk.__version__ in r.output


def test_models_lists_registry():
    r = CliRunner().invoke(cli, ["models"])
    assert r.exit_code == 0 and "wafer_cnn_detector" in r.output
