"""The ``shared_data`` fixture: a skip with a message, or a failure under ``CI=true``."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


@pytest.mark.parametrize("ci, outcome", [("true", "1 error"), ("", "1 skipped")])
def test_missing_shared_data(tmp_path, ci, outcome):
    # a copy of tests/conftest.py two levels below tmp_path: its ../shared/data is absent
    tests = tmp_path / "project" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(CONFTEST, tests / "conftest.py")
    (tests / "test_x.py").write_text("def test_x(shared_data):\n    pass\n")
    env = {**os.environ, "CI": ci}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        str(tests)], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert outcome in p.stdout, p.stdout
    assert "shared data not found at" in p.stdout
    if ci:
        assert p.returncode != 0 and "CI=true, so this is a failure" in p.stdout
    else:
        assert p.returncode == 0
