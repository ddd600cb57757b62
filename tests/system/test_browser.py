"""The product form in a real browser: Debian's headless chromium driven by selenium.

A user types a description, leaves the field, and the page fills in the category from the API;
with the API down the page says so and the form stays usable; the browser console shows no errors
(CSP violations, script errors, failed loads). One browser session serves the whole module.
Chromium and chromedriver come from Debian (scripts/bootstrap); selenium-manager is never used
(the driver's path is given) and the browser only visits the sandbox on 127.0.0.1.

SCREENSHOT=1 saves docs/screenshot.png (the form after the maquiagem example).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import EXAMPLES

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
WAIT = 10  # seconds; the page itself gives up on the API after 10 s
# maquiagem first: the screenshot is taken after it.
LABELS = ["maquiagem", "game", "brinquedo", "livro"]
DISPLAY = {"livro": "Livro", "maquiagem": "Maquiagem", "brinquedo": "Brinquedo", "game": "Game"}
API_PATH = "/api/predizer_categoria"


@pytest.fixture(scope="module")
def driver():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            pytest.fail(f"{path} not found: run scripts/bootstrap (Debian packages chromium, chromium-driver)")
    profile = tempfile.mkdtemp(prefix="classifier-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 # The machine's network is closed: nothing but the page under test.
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--no-default-browser-check",
                 "--window-size=900,760", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    drv.console_seen = []  # every console entry of the session, for the favicon check
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console(drv) -> list[dict]:
    """The browser console's entries since the last call (reading drains chromedriver's log)."""
    entries = drv.get_log("browser")
    drv.console_seen.extend(entries)
    return entries


def is_favicon_404(entry: dict) -> bool:
    return entry["source"] == "network" and "/favicon.ico" in entry["message"] and " 404 " in entry["message"]


def is_api_failure(entry: dict) -> bool:
    return entry["source"] == "network" and API_PATH in entry["message"]


def errors(entries: list[dict]) -> list[dict]:
    """SEVERE entries (CSP violations, script errors, failed loads) but the known favicon 404,
    which the browser fetches on its own schedule and test_no_missing_favicon covers."""
    return [e for e in entries if e["level"] == "SEVERE" and not is_favicon_404(e)]


def open_form(drv, base_url: str) -> WebDriverWait:
    drv.get(f"{base_url}/")
    wait = WebDriverWait(drv, WAIT)
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert drv.title == "Cadastro de produto"
    return wait


def describe(drv, text: str) -> None:
    """Type into the description and leave the field with Tab, as a user would."""
    field = drv.find_element(By.ID, "descricao")
    field.click()
    field.clear()
    field.send_keys(text)
    field.send_keys(Keys.TAB)


def settled_status(wait: WebDriverWait):
    """#status once the request is over: class ok or error (not empty, not busy)."""
    def settled(d):
        status = d.find_element(By.ID, "status")
        return status if status.get_attribute("class") in ("ok", "error") else False
    return wait.until(settled, "the page never finished suggesting a category")


def test_loads_without_console_errors(driver, base_url):
    console(driver)  # drain
    open_form(driver, base_url)
    assert errors(console(driver)) == []


@pytest.mark.parametrize("label", LABELS)
def test_leaving_the_description_fills_the_category(driver, base_url, label):
    wait = open_form(driver, base_url)
    category = driver.find_element(By.ID, "categoria")
    assert category.get_attribute("value") == ""
    console(driver)

    describe(driver, EXAMPLES[label])
    # Tab moved the focus on to the select: the field really was left.
    assert driver.switch_to.active_element.get_attribute("id") == "categoria"
    status = settled_status(wait)

    assert (status.get_attribute("class"), status.text) == ("ok", f"Categoria sugerida: {DISPLAY[label]}.")
    assert category.get_attribute("value") == label
    assert Select(category).first_selected_option.text == DISPLAY[label]
    assert errors(console(driver)) == []  # the API call included: no CSP (connect-src) violation
    if label == "maquiagem" and os.environ.get("SCREENSHOT") == "1":
        driver.find_element(By.ID, "titulo").send_keys("Batom Matte Vermelho")
        driver.execute_script("document.activeElement.blur()")  # no focus ring in the picture
        SCREENSHOT.parent.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))


@pytest.fixture
def api_down(sandbox):
    """The API stopped (socket and service); calling it, or the teardown, starts it again."""
    def start() -> None:
        sandbox.run("systemctl", "start", "classifier.socket", "classifier.service")
        sandbox.wait_until_healthy()

    sandbox.run("systemctl", "stop", "classifier.socket", "classifier.service")
    try:
        yield start
    finally:
        start()


def test_api_down_shows_an_error_and_the_form_stays_usable(driver, base_url, api_down):
    wait = open_form(driver, base_url)  # nginx still serves the page
    category = driver.find_element(By.ID, "categoria")
    field = driver.find_element(By.ID, "descricao")
    console(driver)

    describe(driver, EXAMPLES["livro"])
    status = settled_status(wait)
    assert status.get_attribute("class") == "error", status.text
    assert status.text.startswith("Não foi possível sugerir a categoria"), status.text
    assert category.get_attribute("value") == ""  # nothing made up
    assert field.get_attribute("aria-busy") is None
    assert field.is_enabled() and category.is_enabled()
    # The console shows the failed API request (nginx's 502) and nothing else: no script error.
    entries = errors(console(driver))
    assert any(is_api_failure(e) for e in entries), entries
    assert [e for e in entries if not is_api_failure(e)] == []

    # The user picks the category by hand.
    Select(category).select_by_value("brinquedo")
    assert category.get_attribute("value") == "brinquedo"

    # Typing again works: the text lands in the field, and leaving it asks the API again.
    field.click()
    field.send_keys(" Inclui marcador de páginas.")
    assert field.get_attribute("value") == EXAMPLES["livro"] + " Inclui marcador de páginas."
    api_down()  # the API is back
    field.send_keys(Keys.TAB)
    wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "Categoria sugerida"))
    assert driver.find_element(By.ID, "status").get_attribute("class") == "ok"
    assert category.get_attribute("value") == "livro"
    assert errors(console(driver)) == []


# Browsers ask for an icon on their own: the page declares files/favicon.svg, so no 404 shows in
# the console (an inline data: icon would break the CSP, img-src 'self').
def test_no_missing_favicon(driver, base_url):
    if not driver.console_seen:
        open_form(driver, base_url)
    try:  # the request comes after the load, at the browser's pace
        WebDriverWait(driver, 3).until(lambda d: console(d) is not None and any(
            is_favicon_404(e) for e in d.console_seen))
    except TimeoutException:
        pass
    assert [e for e in driver.console_seen if is_favicon_404(e)] == []
