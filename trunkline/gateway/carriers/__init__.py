"""Carrier media streams: their frame formats (sans-I/O) and single-use stream tokens."""
