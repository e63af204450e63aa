"""A real headless Chromium (Debian's) driven by Playwright, and a per-run screenshot folder.

Playwright's wheel carries its own driver; the browser is the system's
``/usr/bin/chromium``, so nothing is downloaded (``playwright install`` is
never run). The trunkline and agent fixtures are the gateway tests' own.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.gateway.conftest import echo_agent, trunkline, trunkline_overrides  # noqa: F401

CHROMIUM = os.environ.get("TRUNKLINE_TEST_CHROMIUM", "/usr/bin/chromium")
HERE = Path(__file__).parent
ARTIFACTS = HERE / "artifacts"  # gitignored: fresh screenshots of every run
KEPT = HERE / "screenshots"  # committed: the ones the README shows
# TRUNKLINE_CONSOLE_KEEP_SCREENSHOTS=1 refreshes the committed ones from this run.
KEEP_SCREENSHOTS = os.environ.get("TRUNKLINE_CONSOLE_KEEP_SCREENSHOTS", "") not in ("", "0")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    """A Chromium browser context with a throwaway profile; closed (process and all) after."""
    require(importlib.util.find_spec("playwright") is not None, "the playwright package")
    require(shutil.which(CHROMIUM) is not None, f"chromium at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 760},
            timeout=60_000,
        )
        try:
            context.set_default_timeout(30_000)
            yield context
        finally:
            await context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """This run's screenshot folder: ``tests/console/artifacts/<time>/``."""
    folder = ARTIFACTS / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def keep_screenshot(taken: Path, kept_name: str) -> None:
    """Copy a screenshot of this run over the committed one, when asked to."""
    if KEEP_SCREENSHOTS:
        KEPT.mkdir(exist_ok=True)
        shutil.copyfile(taken, KEPT / kept_name)
