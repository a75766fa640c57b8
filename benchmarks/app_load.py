"""How fast the results app draws a big study, next to optuna-dashboard, in one run.

One synthetic 5,000-trial study (written the way `tuner run` stores one: tests/synthetic.py),
one headless Chromium, both servers started here. Printed:

- tuner app, warm server (the study was opened once before), in-app navigation: seconds from
  clicking "Pareto front" in the sidebar until its chart is drawn, and "Trials" until the
  trial table is drawn. Goal: each within 3 s.
- tuner app, warm server, full page load (the URL typed, so the browser loads Streamlit's and
  plotly's JavaScript again): the same two pages.
- tuner app, cold: the very first navigation after the server starts (the study is read from
  the storage inside the timed span, as optuna-dashboard's is).
- optuna-dashboard: seconds from navigating to the study until its Pareto front is drawn
  (benchmarks/_dashboard.py; the dashboard is warmed up on its study list first).
- The ratio app / dashboard. Goal: at most 0.5.
- A refresh that adds one trial: one trial is written to the storage while the trial table
  is open; seconds from clicking Refresh until the table counts it. Goal: well under 1 s.

Run from the repository root (``tests`` must be importable):

    python -m benchmarks.app_load [--trials 5000] [--screenshot-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from benchmarks._dashboard import time_optuna_dashboard
from tests.browser import free_port, headless_chromium, save_screenshot, serve, wait_for
from tests.synthetic import write_study

STUDY = "synthetic"
#: The front chart is drawn once its SVG front line (over the WebGL cloud) has points.
FRONT_DRAWN = '[data-testid="stPlotlyChart"] .scatterlayer .point'
#: The trial table is drawn once its grid canvas is in the page.
TABLE_DRAWN = '[data-testid="stDataFrame"] canvas'


def app_command(storage: str, port: int) -> list[str]:
    tuner = str(Path(sys.executable).with_name("tuner"))
    return [tuner, "app", "--storage", storage, "--study", STUDY, "--port", str(port)]


def timed_page(driver: WebDriver, url: str, drawn: str, timeout_s: float = 120) -> float:
    """Seconds from navigating to `url` until `drawn` is displayed."""
    driver.get("about:blank")
    start = time.perf_counter()
    driver.get(url)
    wait_for(driver, drawn, timeout_s=timeout_s)
    return time.perf_counter() - start


def wait_text(driver: WebDriver, text: str, timeout_s: float = 120) -> None:
    deadline = time.perf_counter() + timeout_s
    while text not in driver.find_element(By.TAG_NAME, "body").text:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the page never showed {text!r}")
        time.sleep(0.02)


def table_drawn(driver: WebDriver, total: int) -> None:
    """The trial table page is drawn: its count and its grid are on the page."""
    wait_text(driver, f"{total} of {total} trials")
    wait_for(driver, TABLE_DRAWN, timeout_s=60)


def click_page(driver: WebDriver, title: str) -> float:
    """Click `title` in the sidebar's page list; the time of the click (perf_counter)."""
    links = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
    link = next(a for a in links if a.text.strip().splitlines()[-1] == title)
    start = time.perf_counter()
    link.click()
    return start


def add_one_trial(storage: str) -> int:
    """Store a copy of the last complete trial as a new trial; the study's new trial count."""
    study = optuna.load_study(study_name=STUDY, storage=storage)
    last = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))[-1]
    study.add_trial(
        optuna.trial.create_trial(
            values=last.values,
            params=last.params,
            distributions=last.distributions,
            user_attrs=last.user_attrs,
            system_attrs=last.system_attrs,
        )
    )
    return len(study.get_trials(deepcopy=False))


def time_refresh(driver: WebDriver, storage: str) -> float:
    """Seconds from clicking Refresh until the open trial table counts one new trial."""
    total = add_one_trial(storage)
    button = next(
        b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "Refresh"
    )
    start = time.perf_counter()
    button.click()
    wait_text(driver, f"{total} of {total} trials", timeout_s=60)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="warm navigations per page")
    parser.add_argument("--screenshot-dir", type=Path, help="save PNGs of the drawn pages")
    args = parser.parse_args()
    shots = args.screenshot_dir
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{Path(folder) / 'synthetic.db'}"
        started = time.perf_counter()
        write_study(storage, STUDY, args.trials)
        print(f"study: {args.trials} synthetic trials ({time.perf_counter() - started:.1f} s)")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with (
            serve(app_command(storage, port), f"{base}/_stcore/health", timeout_s=120),
            headless_chromium() as driver,
        ):
            cold = timed_page(driver, f"{base}/front?study={STUDY}", FRONT_DRAWN)
            front_load = [
                timed_page(driver, f"{base}/front?study={STUDY}", FRONT_DRAWN)
                for _ in range(args.rounds)
            ]
            if shots:
                save_screenshot(driver, shots / "app_front.png")
            table_load = []
            for _ in range(args.rounds):
                driver.get("about:blank")
                start = time.perf_counter()
                driver.get(f"{base}/trials?study={STUDY}")
                table_drawn(driver, args.trials)
                table_load.append(time.perf_counter() - start)
            front_nav, table_nav = [], []
            for _ in range(args.rounds):
                start = click_page(driver, "Pareto front")
                wait_for(driver, FRONT_DRAWN, timeout_s=120)
                front_nav.append(time.perf_counter() - start)
                start = click_page(driver, "Trials")
                table_drawn(driver, args.trials)
                table_nav.append(time.perf_counter() - start)
            if shots:
                save_screenshot(driver, shots / "app_trials.png")
            refresh = time_refresh(driver, storage)

        dashboard = time_optuna_dashboard(
            storage, STUDY, screenshot=shots / "dashboard_front.png" if shots else None
        )

    def line(what: str, seconds: list[float], goal: str = "") -> float:
        median = statistics.median(seconds)
        runs = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"{what:<44}{median:6.2f} s (median of {runs}){goal}")
        return median

    print(f"{'tuner app, cold server, Pareto front (URL)':<44}{cold:6.2f} s")
    front_nav_s = line("tuner app, Pareto front (in-app navigation)", front_nav, "; goal <= 3 s")
    line("tuner app, trial table (in-app navigation)", table_nav, "; goal <= 3 s")
    front_load_s = line("tuner app, Pareto front (URL, page load)", front_load)
    line("tuner app, trial table (URL, page load)", table_load)
    print(f"{'optuna-dashboard, Pareto front (URL)':<44}{dashboard:6.2f} s")
    print(
        f"ratio app / dashboard, Pareto front: navigation {front_nav_s / dashboard:.2f}, "
        f"page load {front_load_s / dashboard:.2f}, cold {cold / dashboard:.2f} (goal <= 0.5)"
    )
    print(f"{'refresh after one new trial':<44}{refresh:6.2f} s (goal well under 1 s)")


if __name__ == "__main__":
    main()
