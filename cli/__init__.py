"""The ``wafertk`` command line (installed as :mod:`wafertk.cli`; source folder ``cli/``).

Each command is a thin layer over a public library function. Importing this package does not
import TensorFlow: commands import what they need when they run.
"""
