"""The optional C extension; everything else about the package is in pyproject.toml.

``optional=True``: where it cannot be compiled (no compiler, no Python headers)
the install goes on without it and trunkline runs its pure-Python twin.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("trunkline._speedups", ["trunkline/_speedups.c"], optional=True),
    ]
)
