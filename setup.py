"""Package discovery only (metadata is in pyproject.toml).

* ``cli/`` is installed as ``wafertk.cli``, never as a top-level ``cli`` module;
* ``configs/`` (the training configs, the shipped models' recipes) is installed as
  ``wafertk/configs`` so that ``wafertk train detector`` finds them in any installation
  (:func:`wafertk.config.resolve_config`).
"""

from setuptools import find_namespace_packages, setup

# Namespace discovery also lists the data-only folders (the shipped models) as packages, so
# setuptools installs their files without warnings.
packages = find_namespace_packages(include=["wafertk", "wafertk.*"],
                                   exclude=["*.__pycache__"])

setup(
    packages=packages + ["wafertk.cli", "wafertk.configs"],
    package_dir={"wafertk": "wafertk", "wafertk.cli": "cli", "wafertk.configs": "configs"},
)  # package data (the shipped models, configs/*.yaml): [tool.setuptools.package-data]
