"""Debian's chromium and chromedriver driven by Selenium, for the tests marked ``browser``
(.ci/install-browser.sh installs both; nothing is downloaded at test time)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
requires_chromium = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                       reason="no chromium / chromedriver: run "
                                              ".ci/install-browser.sh")
WAIT_S = 30


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator:
    """Headless chromium; a test module may set WINDOW = "width,height"."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    window = getattr(request.module, "WINDOW", "1400,760")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={window}"):
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager never looks for (or downloads) a driver.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(1)  # short: waits are explicit (``until``)
    try:
        yield driver
    finally:
        driver.quit()


def until(what: str, check: Callable[[], Any], wait_s: float = WAIT_S) -> None:
    """Poll ``check`` until it is true; elements replaced by a re-render count as not yet."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + wait_s
    while True:
        try:
            if check():
                return
        except (StaleElementReferenceException, NoSuchElementException):
            pass
        assert time.monotonic() < deadline, f"waited {wait_s} s for {what}"
        time.sleep(0.2)
