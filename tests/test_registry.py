import pytest

from wafertk.errors import UnknownNameError
from wafertk.registry import get_entry, list_models, register_model


def test_builtin_entries_listed_without_importing_them():
    names = [e.name for e in list_models()]
    assert {"wafer_cnn_detector", "wafer_cnn_classifier", "xgboost_baseline"} <= set(names)
    assert [e.name for e in list_models("wafer_cnn_*")] == [
        "wafer_cnn_classifier", "wafer_cnn_detector"]


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownNameError, match="did you mean 'wafer_cnn_detector'"):
        get_entry("wafer_cnn_detectr")


def test_register_conflict_and_load():
    register_model("test_entry", "test", "wafertk.data.synthetic:make_wafer", "x")
    assert get_entry("test_entry").load().__name__ == "make_wafer"
    with pytest.raises(ValueError, match="already registered"):
        register_model("test_entry", "test", "os:path")
