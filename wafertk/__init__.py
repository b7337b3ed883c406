"""wafertk: find and name defect patterns on semiconductor wafer maps.

A wafer map is a die grid: 0 = no die, 1 = pass, 2 = fail. Importing this package is cheap:
TensorFlow, XGBoost and scikit-image are imported only by the functions that need them.
"""

from wafertk._version import __version__
from wafertk.errors import WaferFileError, WafertkError

__all__ = ["__version__", "WafertkError", "WaferFileError"]


def _source_checkout_cli() -> None:
    """Make ``wafertk.cli`` importable when this package is a source checkout's ``wafertk/``.

    The command line lives in the top-level ``cli/`` folder, which an installation puts at
    ``wafertk/cli``; in a checkout (say ``python -m wafertk.cli.main`` from its root, where the
    checkout's ``wafertk/`` comes first on ``sys.path``) that folder is registered under the
    same name. An installed package has its own ``wafertk/cli`` and is left alone.
    """
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    cli = os.path.join(os.path.dirname(here), "cli")
    init = os.path.join(cli, "__init__.py")
    if "wafertk.cli" in sys.modules or os.path.isdir(os.path.join(here, "cli")) \
            or not os.path.isfile(init):
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location("wafertk.cli", init,
                                                  submodule_search_locations=[cli])
    module = importlib.util.module_from_spec(spec)
    sys.modules["wafertk.cli"] = module
    spec.loader.exec_module(module)
    globals()["cli"] = module


_source_checkout_cli()
del _source_checkout_cli
