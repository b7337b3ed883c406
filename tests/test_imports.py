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


def test_a_clone_named_wafertk_does_not_shadow_the_installed_package(tmp_path):
    """`git clone .../wafertk.git` makes a folder named wafertk; Python in its parent folder
    must still import the installed package, not that folder as a namespace package."""
    import wafertk

    clone = tmp_path / "wafertk"
    for sub in ("wafertk", "cli", "data", "docs"):
        (clone / sub).mkdir(parents=True)
    (clone / "README.md").write_text("a checkout\n")
    code = "import wafertk, wafertk.cli.main; print(wafertk.__version__)"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == wafertk.__version__


def test_the_command_line_imports_from_a_checkout_root():
    """From the repository root the checkout's wafertk/ comes first; wafertk.cli must follow."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-m", "wafertk.cli.main", "--version"], cwd=root,
                         capture_output=True, text=True)
    assert res.returncode == 0 and "wafertk, version" in res.stdout, res.stderr
