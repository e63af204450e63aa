"""Carrier-facing pieces: media-stream personas, REST clients, signatures, number inventory."""
