"""End to end in a real headless Chromium: the page loads, a dropped-in image is predicted and drawn, and a
3D volume or DICOM series is shown in the bundled NiiVue viewer with its predicted labels on top.

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
    # WebGL 2 (NiiVue) runs on SwiftShader, Chromium's CPU renderer, as there is no GPU here
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,900",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, read by console_errors
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def console_errors(driver) -> list[str]:
    """The page's console errors since the last call (the favicon's 404 is the browser's, not the page's)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]


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


VIEWER_STATE = """const nv = window.medsightViewer; if (!nv) return null;
return {volumes: nv.volumes.length, dims: nv.volumes.map((v) => Array.from(v.hdr.dims.slice(1, 4))),
        maxima: nv.volumes.map((v) => v.global_max), opacity: nv.volumes.map((v) => v.opacity),
        sliceType: nv.opts.sliceType, multiplanar: nv.sliceTypeMultiplanar, axial: nv.sliceTypeAxial,
        calMin: nv.volumes[0].cal_min, calMax: nv.volumes[0].cal_max, crosshair: Array.from(nv.scene.crosshairPos),
        gl: !!nv.gl};"""


def set_range(driver, element_id: str, value) -> None:
    driver.execute_script(f"const s = document.getElementById('{element_id}'); s.value = arguments[0];"
                          "s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change'));", str(value))


def check_niivue_shows(driver, shape_xyz: tuple[int, int, int], with_mask: bool) -> dict:
    """The viewer holds the volume (and the label map) at the input's size; its controls change what it shows."""
    state = driver.execute_script(VIEWER_STATE)
    assert state is not None and state["gl"], "NiiVue was not started"
    assert state["volumes"] == (2 if with_mask else 1)
    assert all(tuple(d) == shape_xyz for d in state["dims"]), state["dims"]
    assert state["sliceType"] == state["multiplanar"]  # the three planes by default
    if with_mask:
        assert 1 <= state["maxima"][1] <= 8 and state["opacity"][1] == 0.5
        set_range(driver, "opacity", 0.8)
        assert driver.execute_script(VIEWER_STATE)["opacity"][1] == 0.8
    before = (state["calMin"], state["calMax"])
    set_range(driver, "window", 100)
    after = driver.execute_script(VIEWER_STATE)
    assert (after["calMin"], after["calMax"]) != before and after["calMax"] > after["calMin"]
    driver.execute_script("const s = document.getElementById('plane'); s.value = 'axial'; s.dispatchEvent(new Event('change'));")
    set_range(driver, "volume-slice", 100)
    after = driver.execute_script(VIEWER_STATE)
    assert after["sliceType"] == after["axial"] and abs(after["crosshair"][2] - 0.1) < 1e-6
    assert console_errors(driver) == []
    return after


def test_page_shows_a_volume_and_its_labels_in_niivue(browser, segmentation_run, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    from medsight.io.images import read_image

    run, data = segmentation_run
    volume = sorted((data / "imagesTs").glob("*.nii.gz"))[0]
    depth, rows, columns = read_image(volume).shape
    with serving(run) as url:
        browser.get(url + "/")
        WebDriverWait(browser, 30).until(lambda d: "segmentation" in d.find_element("id", "model-info").text)
        console_errors(browser)  # start from a clean log
        assert browser.execute_script("return typeof niivue.Niivue") == "function"  # the bundle, served locally
        browser.find_element("id", "file").send_keys(str(volume))
        assert wait_for_state(browser, ("done", "error")) == "done", browser.find_element("id", "status").text
        assert browser.find_element("id", "volume-viewer").is_displayed()
        check_niivue_shows(browser, (columns, rows, depth), with_mask=True)
        fetched = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
        assert url + "/static/niivue.umd.js" in fetched
        assert all(name.startswith((url + "/", "data:", "blob:")) for name in fetched), fetched  # nothing from outside
        browser.save_screenshot(str(tmp_path / "niivue.png"))


def test_page_sends_the_files_of_a_dicom_series(browser, segmentation_run, tmp_path):
    """Several files chosen at once are one DICOM series: predicted, shown in the viewer with its labels."""
    from selenium.webdriver.support.ui import WebDriverWait

    from medsight.io.images import read_image
    from medsight.synthetic.dicom_series import series_of_volume

    run, data = segmentation_run
    volume = sorted((data / "imagesTs").glob("*.nii.gz"))[0]
    depth, rows, columns = read_image(volume).shape
    series = sorted(series_of_volume(volume, tmp_path / "series").iterdir())
    with serving(run) as url:
        browser.get(url + "/")
        WebDriverWait(browser, 30).until(lambda d: "segmentation" in d.find_element("id", "model-info").text)
        console_errors(browser)
        browser.find_element("id", "file").send_keys("\n".join(str(p) for p in series))
        assert wait_for_state(browser, ("done", "error")) == "done", browser.find_element("id", "status").text
        assert browser.find_element("id", "status").text.startswith(f"{len(series)} DICOM files")
        check_niivue_shows(browser, (columns, rows, depth), with_mask=True)
