"""End to end in a real headless Chromium: the page loads, a dropped-in image is predicted and drawn.

Needs chromium and chromedriver (Debian: `apt-get install chromium chromium-driver`, see .ci/install-browser)
and the selenium package; the test skips, saying which is missing, only where they cannot be found.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest


def find_browser() -> tuple[str, str]:
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("no headless browser here: chromium and chromedriver are needed (run .ci/install-browser)")
    return browser, driver


@contextlib.contextmanager
def serving(run: Path):
    """`medsight serve`'s application under uvicorn on a free loopback port, in a thread."""
    import uvicorn

    from medsight.serving.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(run), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("the server did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_server(trained_run):
    with serving(trained_run) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    browser_path, driver_path = find_browser()
    webdriver = pytest.importorskip("selenium.webdriver", reason="the selenium package is needed (pip install selenium)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for_state(driver, states: tuple[str, ...], seconds: float = 60) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, seconds).until(
        lambda d: d.find_element("id", "result").get_attribute("data-state") in states)
    return driver.find_element("id", "result").get_attribute("data-state")


def test_page_predicts_a_dropped_image(browser, live_server, test_pngs, trained_run, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    from .conftest import run_classes

    classes = run_classes(trained_run)
    browser.get(live_server + "/")
    WebDriverWait(browser, 30).until(lambda d: "classification" in d.find_element("id", "model-info").text)
    image = sorted(test_pngs[0].glob("*.png"))[0]
    browser.find_element("id", "explain").click()  # Grad-CAM is off unless asked for
    browser.find_element("id", "file").send_keys(str(image))
    assert wait_for_state(browser, ("done", "error")) == "done", browser.find_element("id", "status").text
    decision = browser.find_element("css selector", "#summary .decision").text
    assert decision in classes
    rows = browser.find_elements("css selector", "table.probs tr")
    assert [r.find_elements("tag name", "td")[0].text for r in rows] == classes
    tabs = [b.text for b in browser.find_elements("css selector", "#tabs button")]
    assert tabs == ["overlay", "gradcam", "gradcampp"]
    drawn = browser.execute_script("const p = document.getElementById('picture'); return [p.complete, p.naturalWidth];")
    assert drawn[0] is True and drawn[1] >= 256  # the overlay PNG was decoded and has pixels
    browser.find_element("css selector", "#tabs button:nth-child(2)").click()
    assert browser.find_element("id", "picture").get_attribute("src") != ""
    browser.save_screenshot(str(tmp_path / "page.png"))

    bad = tmp_path / "notes.txt"
    bad.write_text("not an image", encoding="utf-8")
    browser.find_element("id", "file").send_keys(str(bad))
    assert wait_for_state(browser, ("error",)) == "error"
    assert "refused (415)" in browser.find_element("id", "status").text


def test_page_shows_segmentation_slices_with_a_slider(browser, segmentation_run):
    from selenium.webdriver.support.ui import WebDriverWait

    from medsight.io.images import read_image

    run, data = segmentation_run
    volume = sorted((data / "imagesTs").glob("*.nii.gz"))[0]
    depth = read_image(volume).shape[0]
    with serving(run) as url:
        browser.get(url + "/")
        WebDriverWait(browser, 30).until(lambda d: "segmentation" in d.find_element("id", "model-info").text)
        browser.find_element("id", "file").send_keys(str(volume))
        assert wait_for_state(browser, ("done", "error")) == "done", browser.find_element("id", "status").text
        tabs = [b.text for b in browser.find_elements("css selector", "#tabs button")]
        assert "slices" in tabs
        browser.find_element("css selector", f"#tabs button:nth-child({tabs.index('slices') + 1})").click()
        slider = browser.find_element("id", "slice")
        assert slider.is_displayed() and slider.get_attribute("max") == str(depth - 1)
        before = browser.find_element("id", "picture").get_attribute("src")
        browser.execute_script("const s = document.getElementById('slice'); s.value = 0; s.dispatchEvent(new Event('input'));")
        assert browser.find_element("id", "picture").get_attribute("src") != before
        assert browser.find_element("id", "slice-label").text == f"slice 1 / {depth}"
        assert browser.execute_script("return document.getElementById('picture').naturalWidth") > 0
