"""The optional C extension; everything else about the package is in pyproject.toml.

``optional=True``: where it cannot be compiled (no compiler, no Python headers)
the install goes on without it and trunkline runs its pure-Python twin.
"""

import sys

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "trunkline._speedups",
            ["trunkline/_speedups.c"],
            libraries=[] if sys.platform == "win32" else ["m"],  # rint(), for resampling
            optional=True,
        ),
    ]
)
