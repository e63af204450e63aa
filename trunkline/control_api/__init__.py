"""The HTTP surface: Inkbox-compatible control API, health, metrics, media ingress."""

from trunkline.control_api.app import Mount, build_app

__all__ = ["Mount", "build_app"]
