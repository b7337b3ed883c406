"""Package discovery only (metadata is in pyproject.toml).

The ``cli/`` folder is installed as ``wafertk.cli``, never as a top-level ``cli`` module.
"""

from setuptools import find_namespace_packages, setup

# Namespace discovery also lists the data-only folders (the shipped models) as packages, so
# setuptools installs their files without warnings.
packages = find_namespace_packages(include=["wafertk", "wafertk.*"],
                                   exclude=["*.__pycache__"])

setup(
    packages=packages + ["wafertk.cli"],
    package_dir={"wafertk": "wafertk", "wafertk.cli": "cli"},
)
