"""Tests of the carrier-facing pieces."""
