"""Typed keys for objects stored on the aiohttp application and requests."""

from __future__ import annotations

from aiohttp import web

from trunkline.services import Services

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
