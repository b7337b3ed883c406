"""`import wafertk`, the data layer and `wafertk --help` must not import TensorFlow or XGBoost."""

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "xgboost", "torch", "jax")


@pytest.mark.parametrize(
    "code",
    [
        "import wafertk, wafertk.data, wafertk.data.preprocess, wafertk.data.splits, "
        "wafertk.data.synthetic, wafertk.registry, wafertk.models, wafertk.config",
        "import sys; sys.argv = ['wafertk', '--help']\n"
        "from wafertk.cli.main import cli\n"
        "try:\n    cli(prog_name='wafertk')\nexcept SystemExit:\n    pass",
    ],
)
def test_no_heavy_imports(code):
    check = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_cli_is_not_a_top_level_package(tmp_path):
    res = subprocess.run([sys.executable, "-c", "import cli"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode != 0 and "No module named 'cli'" in res.stderr
