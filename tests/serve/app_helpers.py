"""Talking to a running `ugatit serve`: through Gradio's client (`call_app`) and in a headless Chromium
(`chromium`, `wait_for`). Imported as `app_helpers` by the web app's tests, so that no test module
imports another."""

from __future__ import annotations

import os
import shutil

import pytest

WAIT_SECONDS = 60
# Chromium as root in a container, offline: no sandbox, no GPU, and none of its own network traffic
# (updates, sync, QUIC), which a closed network refuses and which would slow or break the page.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium(need, *flags: str):
    """Debian's headless Chromium through its chromedriver, with `flags` after `CHROMIUM_FLAGS`; missing, a
    skip on a developer's machine and a failure in CI (as `need`)."""
    webdriver = need("selenium.webdriver")
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver_path):
        message = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, *flags):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))


def call_app(server, need, downloads, *images, **options):
    gradio_client = need("gradio_client")
    client = gradio_client.Client(server.url, verbose=False, download_files=str(downloads))
    arguments = {"webcam_shot": None, "direction": "a2b", "face_crop": False, "size": 32, **options}
    return client.predict(
        images=[gradio_client.handle_file(str(p)) for p in images], api_name="/translate", **arguments
    )


def wait_for(browser, condition, what="the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_SECONDS, poll_frequency=0.2).until(condition, f"waiting for {what}")
