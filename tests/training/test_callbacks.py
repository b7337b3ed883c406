"""Training callbacks: the step LR schedule and the per-epoch line (logged, never printed)."""

import logging

import pytest

pytestmark = pytest.mark.tf


def test_step_schedule_values():
    from wafertk.training.callbacks import step_lr

    base = 0.1
    got = {e: step_lr(e, base) for e in (0, 79, 80, 119, 120, 160, 179, 180, 250)}
    assert got[0] == got[79] == base
    assert got[80] == pytest.approx(0.01) and got[119] == pytest.approx(0.01)
    assert got[120] == pytest.approx(1e-3)
    assert got[160] == pytest.approx(1e-4) and got[179] == pytest.approx(1e-4)
    assert got[180] == pytest.approx(5e-5) and got[250] == pytest.approx(5e-5)


def test_epoch_line_logs_and_calls_back_without_printing(capsys, caplog):
    from wafertk.training.callbacks import EpochLine

    lines = []
    cb = EpochLine(3, "detector", on_line=lines.append)
    with caplog.at_level(logging.INFO, logger="wafertk.training.callbacks"):
        cb.on_epoch_begin(0)
        cb.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.25, "other": 1})
        EpochLine(3).on_epoch_end(1, {"loss": 0.1})  # no callback: only logged
    assert lines == ["detector epoch 1/3 0s loss=0.5 val_loss=0.25"]
    assert [r.getMessage() for r in caplog.records][0] == lines[0]
    assert capsys.readouterr() == ("", "")
