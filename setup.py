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
            ["trunkline/_speedups.c", "trunkline/_jitter_core.c", "trunkline/_rtp_core.c"],
            depends=["trunkline/_rtp_header.h"],
            libraries=[] if sys.platform == "win32" else ["m"],  # rint(), for resampling
            # a * b + c stays two roundings (no fused multiply-add): resampled samples are
            # the same as the pure-Python twin's on every machine
            extra_compile_args=[] if sys.platform == "win32" else ["-ffp-contract=off"],
            optional=True,
        ),
    ]
)
