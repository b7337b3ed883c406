"""Package discovery only (metadata is in pyproject.toml).

The ``cli/`` folder is installed as ``wafertk.cli``, never as a top-level ``cli`` module.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["wafertk", "wafertk.*"]) + ["wafertk.cli"],
    package_dir={"wafertk": "wafertk", "wafertk.cli": "cli"},
)
