"""`tuner app` in a real headless Chromium: the front draws, a clicked point shows its config,
the trial table draws. Screenshots are kept in ``test-artifacts/`` (or $TUNER_ARTIFACTS).

Skipped where Debian's chromium and chromium-driver are missing, unless TUNER_REQUIRE_BROWSER
is set (as .ci/run sets it): then a missing browser fails the test.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest

from tests.browser import (
    chromium_available,
    free_port,
    headless_chromium,
    page_text,
    save_screenshot,
    serve,
    wait_for,
)
from tests.synthetic import write_study
from tuner.attrs import TrialAttr

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("TUNER_ARTIFACTS", ROOT / "test-artifacts"))
FRONT_DRAWN = '[data-testid="stPlotlyChart"] .scatterlayer .point'
TABLE_DRAWN = '[data-testid="stDataFrame"] canvas'

if not chromium_available():
    if os.environ.get("TUNER_REQUIRE_BROWSER"):
        pytest.fail("TUNER_REQUIRE_BROWSER is set but chromium/chromedriver/selenium is missing")
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )


def wait_text(driver: WebDriver, pattern: str, timeout_s: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        text = page_text(driver, chars=100_000)
        if match := re.search(pattern, text):
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} never appeared; the page shows:\n{text[:2000]}")
        time.sleep(0.1)


@pytest.mark.slow
def test_front_click_config_and_table_in_a_real_browser(tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    storage = f"sqlite:///{tmp_path / 'browser.db'}"
    write_study(storage, "browser", 60, seed=5)
    stored = optuna.load_study(study_name="browser", storage=storage)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tuner = str(Path(sys.executable).with_name("tuner"))
    command = [tuner, "app", "--storage", storage, "--study", "browser", "--port", str(port)]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve(command, f"{base}/_stcore/health", timeout_s=120), headless_chromium() as driver:
        driver.get(f"{base}/")  # with --study, the first page is that study's front
        wait_for(driver, FRONT_DRAWN, timeout_s=120)
        assert "Pareto front" in page_text(driver)
        save_screenshot(driver, ARTIFACTS / "app_front.png")

        # Click the first point of the trace named "front" (60 trials draw as SVG points).
        index = driver.execute_script(
            "return document.querySelector('.js-plotly-plot').data"
            ".findIndex(t => t.name === 'front')"
        )
        traces = driver.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace")
        point = traces[index].find_elements(By.CSS_SELECTOR, ".point")[0]
        ActionChains(driver).move_to_element(point).click().perform()
        number = int(wait_text(driver, r"Trial (\d+)").group(1))

        front = {t.number for t in stored.best_trials}
        assert number in front, (number, front)
        config = stored.trials[number].user_attrs[TrialAttr.CONFIG]
        wait_text(driver, r"name: " + re.escape(config["optimizer"]["name"]))
        assert f"lr: {config['optimizer']['lr']!r}" in page_text(driver, chars=100_000)
        assert f"batch_size: {config['batch_size']}" in page_text(driver, chars=100_000)
        save_screenshot(driver, ARTIFACTS / "app_front_selected.png")

        links = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
        next(a for a in links if a.text.strip().splitlines()[-1] == "Trials").click()
        wait_text(driver, r"60 of 60 trials")
        wait_for(driver, TABLE_DRAWN, timeout_s=60)
        save_screenshot(driver, ARTIFACTS / "app_trials.png")
