"""trunkline: a self-hosted telephony gateway for AI agents."""

__version__ = "0.1.0"
