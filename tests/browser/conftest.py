"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

A missing browser fails the run (``.ci/run`` installs both). Screenshots are test
artefacts under ``test-artifacts/console/`` (gitignored); their paths are printed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from tests.conftest import REPO
from tests.console.conftest import console  # noqa: F401 - the console fixture, shared

ARTIFACTS = REPO / "test-artifacts" / "console"


def _find(*names: str) -> str:
    for n in names:
        path = shutil.which(n)
        if path:
            return path
    raise AssertionError(f"none of {names} is installed: run `apt-get install -y chromium chromium-driver`")


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = _find("chromium", "chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=_find("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    _TAKEN.append(path)
    print(f"screenshot: {path}")
    return path


_TAKEN: list[Path] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the screenshots this run kept, also when output is captured."""
    if _TAKEN:
        terminalreporter.write_line(f"console screenshots ({len(_TAKEN)}): {ARTIFACTS}/")
