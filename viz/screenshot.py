"""Save `viz/backprop.png`: the step-through page at its default zoom, as a 1400×1000 browser
window shows it, a few steps in. Needs Chromium, chromedriver and selenium (the test extra).

    python viz/screenshot.py            # after `tinygrad-fnn graph --out viz --formats svg`

The tests drive the page with the same `browser()`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZE = (1400, 1000)


def browser(width: int = SIZE[0], height: int = SIZE[1]):
    """Headless Chromium through selenium, with a window of `width` × `height` CSS pixels."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise FileNotFoundError(
            "no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)"
        )
    options = Options()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.set_window_size(width, height)
    # the window includes the browser's frame: grow it until the page itself has the size asked
    inner = chrome.execute_script("return [window.innerWidth, window.innerHeight]")
    chrome.set_window_size(2 * width - inner[0], 2 * height - inner[1])
    return chrome


def main() -> int:
    page, shot = HERE / "backprop.html", HERE / "backprop.png"
    chrome = browser()
    try:
        chrome.get(page.as_uri())
        for _ in range(3):
            chrome.find_element("id", "next").click()
        chrome.save_screenshot(str(shot))
    finally:
        chrome.quit()
    print(f"written {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
