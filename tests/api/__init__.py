"""Tests of the Inkbox-compatible control API against a live server."""
