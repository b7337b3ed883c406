"""Fixtures shared by the command-line tests."""

import pytest


def _check_one_line_error(r, *needles) -> None:
    """Exit code 2, one ``wafertk: error:`` line on stderr holding every needle, no traceback."""
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("wafertk: error: "), r.stderr
    for n in needles:
        assert str(n) in lines[0], lines[0]
    assert "Traceback" not in r.output
    assert r.stdout == ""


@pytest.fixture
def one_line_error():
    """``one_line_error(result, *needles)``: assert a click result is a one-line user error."""
    return _check_one_line_error
