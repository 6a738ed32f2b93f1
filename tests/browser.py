"""What the browser tests share: Debian's Chromium driven by Playwright against a live server, or a skip.

A test module calls `require_chromium()` before importing Playwright: it is skipped with a message when
Chromium is not installed, unless REQUIRE_BROWSER is set (`.ci/run` installs Chromium and sets it, so CI
never passes by skipping).
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS", ROOT / "var" / "screenshots"))


def require_chromium() -> None:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("REQUIRE_BROWSER"):
            raise RuntimeError(f"REQUIRE_BROWSER is set but {CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"browser test skipped: {CHROMIUM} is not installed (apt-get install chromium; .ci/run does)",
                    allow_module_level=True)


# Each browser test runs once per language the product offers: the browser asks for it (Accept-Language).
LANGUAGES = {"zh-hans": "zh-CN", "en": "en-US"}


@contextmanager
def chromium_page(problems: list[str], language: str = "zh-hans") -> Iterator:
    """A page of a headless Chromium whose user reads `language`; console errors, page errors and failed requests
    go to `problems`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900}, locale=LANGUAGES[language])
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            # A request the page itself gave up (a preview superseded by the next keystroke, or in flight when the
            # test moves to another page) is aborted by the browser, not failed by the server.
            page.on("requestfailed", lambda request: None if request.failure == "net::ERR_ABORTED"
                    else problems.append(f"{request.url}: {request.failure}"))
            yield page
        finally:
            browser.close()


def log_in(page, server_url: str, username: str, next_url: str, password: str = "pass-word-123") -> None:
    page.goto(f"{server_url}/accounts/login/?next={next_url}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form.login button[type=submit]")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
