"""The HTTP surface: Inkbox-compatible control API, health, metrics, media ingress."""

from trunkline.control_api.app import SERVICES, build_app

__all__ = ["SERVICES", "build_app"]
