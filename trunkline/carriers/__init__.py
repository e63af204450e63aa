"""Carrier phone-number inventory and numbering: where numbers come from and what they are."""
