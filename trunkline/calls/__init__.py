"""The call core: what a call is and how it goes, whichever leg carries the caller."""
