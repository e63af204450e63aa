"""Local stand-ins for third-party services, reachable only on loopback."""
