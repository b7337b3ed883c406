"""``wafertk models``, help one-liners, and the promises only a real process shows.

The subprocess tests run ``python -m wafertk.cli.main`` with TensorFlow's C++ logging left on
(``TF_CPP_MIN_LOG_LEVEL=0``): what they check is everything the user would see on stderr.
"""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from wafertk.cli.main import cli
from wafertk.data import write_wafers
from wafertk.data.synthetic import make_wafers


def wafertk(*args, timeout=120):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    return subprocess.run([sys.executable, "-m", "wafertk.cli.main", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def assert_one_line(res, *needles):
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("wafertk: error: ") and "Traceback" not in res.stderr
    for n in needles:
        assert str(n) in lines[0], lines[0]
    assert res.stdout == ""


@pytest.fixture(scope="module")
def h5(tmp_path_factory):
    return write_wafers(make_wafers(30, n_lots=6, random_state=0),
                        tmp_path_factory.mktemp("w") / "w.h5")


def test_models_lists_architectures_and_shipped_models():
    r = CliRunner().invoke(cli, ["models"])
    assert r.exit_code == 0, r.output
    for name in ("wafer_cnn_detector", "wafer_cnn_classifier", "xgboost_baseline",
                 "detector", "classifier", "xgboost"):
        assert name in r.output
    assert "shipped" in r.output and "validation: recall 0.98" in r.output
    assert "macro_f1 0.9" in r.output
    r = CliRunner().invoke(cli, ["models", "xgb*"])
    assert "wafer_cnn_detector" not in r.output and "xgboost_baseline" in r.output


def test_help_one_liners_are_whole_sentences():
    for args in (["--help"], ["train", "--help"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0
        lines = r.output.split("Commands:")[1].strip().splitlines()
        for name in ("train", "models", "evaluate", "detector", "classifier", "xgboost"):
            for line in lines:
                if line.split()[:1] == [name]:
                    assert not line.rstrip().endswith("..."), line


def test_bad_config_value_one_line_in_a_real_process(h5, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  dropout: 2.0\ntrain:\n  epochs: 0\n")
    res = wafertk("train", "detector", "--data", h5, "-o", tmp_path / "run", "--config", bad)
    assert_one_line(res, f"{bad}: model.dropout: 2.0 is not in [0, 1)",
                    "train.epochs: 0 is not >= 1")
    assert not (tmp_path / "run").exists()


def test_evaluate_misspelt_model_suggests_in_a_real_process(h5, tmp_path):
    res = wafertk("evaluate", "--model", "xgbost", h5, "-o", tmp_path / "r")
    assert_one_line(res, "unknown model 'xgbost'", "did you mean 'xgboost'")


@pytest.mark.parametrize("what", ["folder", "missing"])
def test_train_on_a_bad_data_path_fails_before_tensorflow(what, tmp_path):
    """One line, and fast: TensorFlow is never imported (its start-up would print lines)."""
    data = tmp_path if what == "folder" else tmp_path / "missing.h5"
    code = ("import sys\nfrom wafertk.cli.main import main\n"
            f"sys.argv = ['wafertk', 'train', 'detector', '--data', {str(data)!r}, '-o', "
            f"{str(tmp_path / 'run')!r}]\n"
            "try:\n    main()\nfinally:\n"
            "    assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60)
    assert_one_line(res, str(data), "is a folder" if what == "folder" else "no such file")
    res = wafertk("train", "classifier", "--data", data, "-o", tmp_path / "run")
    assert_one_line(res, str(data))


def test_models_pattern_without_match_is_an_error():
    from click.testing import CliRunner

    from wafertk.cli.main import cli

    r = CliRunner().invoke(cli, ["models", "detektor"])
    assert r.exit_code == 2 and "did you mean 'detector'" in r.stderr
