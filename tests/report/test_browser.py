"""The review flow in a real browser: the MLflow UI over a store a short run of the bundled example wrote.

Needs Chromium and its driver (Debian packages ``chromium`` and ``chromium-driver``,
installed by ``scripts/setup.sh`` when run as root) and ``selenium`` (the ``dev`` extra).
Set ``AUTOTWEAK_DOCS_SCREENSHOTS=1`` to also refresh the screenshots under ``docs/``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import autotweak
from autotweak.testing.services import mlflow_server
from tests.helpers import load, mlflow_runs
from tests.report.helpers import run_cli

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    ElementNotInteractableException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "mlflow-ui"
EXAMPLE = ROOT / "examples" / "mlp_digits.yaml"  # README command (1), on the default sampler and pruner
WAIT = 120  # seconds: the UI is a React app, slow to start on a busy 2-core machine

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and DRIVER.exists()),
    reason="needs the Debian packages chromium and chromium-driver (scripts/setup.sh installs them as root)",
)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_text(driver: WebDriver, text: str) -> None:
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']")
    )


def _click_text(driver: WebDriver, text: str) -> None:
    """Click an element showing ``text`` once one is visible and takes clicks (React re-renders)."""

    def click(d: WebDriver) -> bool:
        for element in d.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']"):
            try:
                if element.is_displayed() and element.is_enabled():
                    element.click()
                    return True
            except (ElementNotInteractableException, StaleElementReferenceException):
                continue
        return False

    WebDriverWait(driver, WAIT).until(click)


def _wait_css(driver: WebDriver, selector: str) -> WebElement:
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    return driver.find_element(By.CSS_SELECTOR, selector)


def _close_assistant(driver: WebDriver) -> None:
    """Close MLflow's assistant panel, which takes a third of the window."""
    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
        if button.is_displayed():
            button.click()


def _shoot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    if os.environ.get("AUTOTWEAK_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copy(path, DOCS / name)
    return path


@pytest.mark.slow
def test_parent_run_children_and_report_in_the_mlflow_ui(home, mlflow_client, browser, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the objective is examples.mlp_digits:train
    monkeypatch.syspath_prepend(str(ROOT))
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec |= {"budget": {"trials": 10}, "execution": {"workers": 1}}  # 10 of its 40 trials, a few pruned
    exp = autotweak.Experiment.from_dict(spec)
    autotweak.optimize(exp)
    run_cli(home, "report", exp.name, "--html", "html")
    runs = mlflow_runs(mlflow_client, exp.name)
    parent = runs.parents[0].info
    assert len(runs.children) == len(load(exp).trials) == 10

    with mlflow_server(f"sqlite:///{home / 'mlflow.db'}", tmp_path / "served") as url:
        experiment = f"{url}/#/experiments/{parent.experiment_id}"
        browser.get(f"{experiment}/runs?workflowType=machine_learning")
        row = _wait_css(browser, f"[role='row'][row-id='{parent.run_id}']")
        assert exp.name in row.text, "the parent run is named after the study"
        row.find_element(By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']").click()
        for number in sorted(runs.children):
            _wait_text(browser, f"trial-{number:04d}")
        _close_assistant(browser)
        _shoot(browser, tmp_path, "runs.png")

        browser.get(f"{experiment}/runs?workflowType=machine_learning&compareRunsMode=CHART")
        # The charts come in the metrics' alphabetical order, and only those in view are drawn:
        # the learning curves (val_accuracy) are found through the charts' search box.
        _wait_css(browser, "input[placeholder='Search metric charts']").send_keys(exp.metric.name)
        _wait_text(browser, exp.metric.name)
        WebDriverWait(browser, WAIT).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 2
        )
        _close_assistant(browser)
        time.sleep(3)  # the line charts draw after the bar charts
        _shoot(browser, tmp_path, "curves.png")

        browser.get(f"{experiment}/runs/{parent.run_id}/artifacts?workflowType=machine_learning")
        _wait_text(browser, "report")
        _click_text(browser, "report")
        for name in ("report.html", "history.png", "curves.png"):
            _wait_text(browser, name)
        _click_text(browser, "report.html")
        WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))
        _shoot(browser, tmp_path, "report-artifact.png")
