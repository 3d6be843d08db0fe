"""The report of the tiny e2e run, opened in a real browser (headless Chromium through
chromedriver): every category opens from the menu, and each item in it shows what it should, a
table whose header and cells are visible text or an image that has loaded (non-zero natural
size). Screenshots of the landing page and of every item are saved beside the run
(``<tiny run>/report_screenshots/``; the path is printed).

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them) and `selenium` (the test
extra). Without them the test is skipped locally, and fails under CI=true.
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from test_workflow import E2E_CONFIG, snakemake

pytestmark = pytest.mark.slow

CATEGORIES = {
    "World": {"Tables"},
    "Compression": {"Tables", "Plots"},
    "Structured compression": {"Tables", "Plots"},
    "Circuits": {"Tables", "Plots", "Circuit maps"},
    "Correction": {"Tables", "Examples", "Plots"},
}
# The table each HTML item renders (its first table's header must be visible in the browser).
MARKDOWN = {
    "world_card.html": "world_card.md",
    "compression.html": "compression.md",
    "structured.html": "structured.md",
    "circuits.html": "circuits.md",
    "correction.html": "correction.md",
    "correction_examples.html": "correction_examples.md",
}


def _browser():
    """A headless Chromium session, or a skip (a failure under CI) naming what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [
        name for name, found in (("chromium", chromium), ("chromedriver", driver), ("selenium", webdriver)) if not found
    ]
    if missing:
        message = f"report browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver; pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(driver))


def _wait(condition, what: str, timeout: float = 15.0):
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _header(markdown: str) -> list[str]:
    """The cells of the first table's header row in `markdown`."""
    for line in markdown.splitlines():
        if line.startswith("|"):
            return [c.strip() for c in line.strip().strip("|").split("|") if c.strip()]
    raise AssertionError("no table in the Markdown")


def _click(browser, text: str) -> None:
    from selenium.webdriver.common.by import By

    link = _wait(
        lambda: [a for a in browser.find_elements(By.XPATH, f"//a[normalize-space()='{text}']") if a.is_displayed()],
        f"a link '{text}'",
    )
    link[0].click()


def _check_html(browser, path: str, tables: Path) -> str:
    """The item's iframe shows its table: the header of the Markdown's first table and at least
    one data row, as visible text."""
    from selenium.webdriver.common.by import By

    uri = browser.execute_script("return results[arguments[0]].data_uri", path)
    frame = _wait(
        lambda: [f for f in browser.find_elements(By.TAG_NAME, "iframe") if f.get_attribute("src") == uri],
        f"the iframe of {path}",
    )[0]
    browser.switch_to.frame(frame)
    try:
        table = _wait(lambda: browser.find_elements(By.TAG_NAME, "table"), f"a table in {path}")[0]
        assert table.is_displayed() and table.size["height"] > 0
        text = browser.find_element(By.TAG_NAME, "body").text
        header = _header((tables / MARKDOWN[Path(path).name]).read_text())
        missing = [cell for cell in header if cell.replace("\\|", "|") not in text]
        assert not missing, f"{path}: header cells not visible: {missing}"
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert rows and rows[0].text.strip(), f"{path}: no visible data row"
        if Path(path).name != "correction_examples.html":  # every interpreted table says its point first
            assert "In short" in text and text.index("In short") < text.index(header[0]), f"{path}: no In short"
        cells = [td.text.strip() for td in table.find_elements(By.TAG_NAME, "td")]
        assert not {"nan", "NaN", "None"} & set(cells), f"{path}: a raw missing value shown"
        return text
    finally:
        browser.switch_to.default_content()


def _check_image(browser, path: str) -> tuple[int, int]:
    """The item's image has loaded: complete, with a non-zero natural size."""
    size = _wait(
        lambda: browser.execute_script(
            "const uri = results[arguments[0]].data_uri;"
            "const img = Array.from(document.images).find(i => i.src === uri && i.complete);"
            "return img && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : null;",
            path,
        ),
        f"the image of {path}",
    )
    assert size[0] > 100 and size[1] > 100, f"{path}: image of {size}"
    return tuple(size)


def _open(browser, category: str, subcategory: str) -> None:
    """From wherever the menu is: back to the list of categories, then the category, then the
    subcategory (a category of one subcategory opens it directly)."""
    from selenium.webdriver.common.by import By

    visible = [a for a in browser.find_elements(By.XPATH, f"//a[normalize-space()='{category}']") if a.is_displayed()]
    if not visible:
        _click(browser, "Results")  # the breadcrumb back to the categories
    _click(browser, category)
    if len(CATEGORIES[category]) > 1:
        _click(browser, subcategory)


def check_report(report: Path, tables: Path, shots: Path) -> list[str]:
    """Open `report`, visit every item of every category from the menu and check it (tables
    against the Markdown in `tables`), saving screenshots in `shots`; the items seen."""
    from selenium.webdriver.common.by import By

    shots.mkdir(exist_ok=True)
    browser = _browser()
    try:
        browser.get(report.as_uri())
        body = lambda: browser.find_element(By.TAG_NAME, "body").text  # noqa: E731
        # a report of several MB: on a loaded machine Chromium takes a while to lay it out
        _wait(lambda: "Attribution-guided pruning benchmark" in body(), "the landing page", timeout=90)
        assert "at sparsities 0.0, 0.5" in body() and "at or above 0.9" in body(), body()[:800]
        browser.save_screenshot(str(shots / "00-landing.png"))
        layout = browser.execute_script(
            "return Object.fromEntries(Object.entries(categories).map(([c, s]) => [c, Object.keys(s)]))"
        )
        assert {c: set(s) for c, s in layout.items()} == CATEGORIES
        expected = browser.execute_script(
            "return Object.values(categories).flatMap(s => Object.values(s).flatMap(r => r))"
        )
        seen = []
        for n, category in enumerate(sorted(CATEGORIES), 1):
            for subcategory in sorted(CATEGORIES[category]):
                _open(browser, category, subcategory)
                rows = _wait(
                    lambda: [
                        tr
                        for tr in browser.find_elements(By.CSS_SELECTOR, "nav ~ * tbody tr, tbody tr")
                        if tr.is_displayed()
                    ],
                    f"the items of {category} / {subcategory}",
                )
                for i in range(len(rows)):
                    row = [tr for tr in browser.find_elements(By.CSS_SELECTOR, "tbody tr") if tr.is_displayed()][i]
                    assert row.text.strip(), f"{category} / {subcategory}: item {i} has no labels"
                    before = browser.execute_script("return app.state.resultPath || null")
                    row.find_elements(By.TAG_NAME, "a")[0].click()  # the view (eye) button
                    path = _wait(
                        lambda b=before: (
                            (p := browser.execute_script("return app.state.resultPath || null")) != b and p
                        ),
                        f"item {i} of {category} / {subcategory} to open",
                    )
                    params = browser.execute_script("return results[arguments[0]].job_properties.params", path)
                    assert ",results/" not in params and len(params) < 2000, (
                        f"{path}: job info lists files: {params[:300]}"
                    )
                    if path.endswith(".html"):
                        _check_html(browser, path, tables)
                    else:
                        _check_image(browser, path)
                    seen.append(path)
                    name = re.sub(r"[^a-z0-9]+", "-", f"{n:02d} {category} {subcategory} {i}".lower())
                    browser.save_screenshot(str(shots / f"{name}.png"))
        assert sorted(seen) == sorted(expected), "items the menu did not reach, or reached twice"
        return seen
    finally:
        browser.quit()


def test_every_category_shows_its_tables_and_images(tiny_run):
    report = tiny_run / "report.html"
    r = snakemake(tiny_run, E2E_CONFIG, "--report", str(report), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    shots = tiny_run / "report_screenshots"
    print(f"report: {report}; screenshots: {shots}")
    seen = check_report(report, tiny_run / "results" / "tables", shots)
    assert len(seen) >= 6 + 4 + 4  # the tables, a plot per stage, the circuit maps
