"""``audioop`` as the reference: the standard library's before Python 3.13, audioop-lts after."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["audioop"]
