"""optuna-dashboard's time to draw a study's Pareto front in a real browser.

The reference for the app's own load time (benchmarks/app_load.py): the same study, the same
headless Chromium, the time from navigating to the study's page until its Pareto front shows.
optuna-dashboard 0.21 draws the front on the study's top page (``/dashboard/studies/<id>``)
for every study with two or more objectives, into ``<div id="graph-pareto-front">`` with
plotly.js: an SVG ``scatter`` per kind of trial, one ``path.point`` per trial.

Run from the repository root (``tests`` must be importable), on a synthetic study:

    python -m benchmarks._dashboard [--trials 5000] [--screenshot /tmp/dashboard.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.browser import free_port, headless_chromium, save_screenshot, serve, wait_for

#: One drawn trial point of the Pareto-front plot.
PARETO_POINT = "#graph-pareto-front .main-svg .scatterlayer .point"
#: The link to a study on the dashboard's study list (its home page).
_STUDY_LINK = 'a[href$="/dashboard/studies/{id}"]'


def time_optuna_dashboard(
    storage_url: str,
    study_name: str,
    *,
    timeout_s: float = 120.0,
    screenshot: str | Path | None = None,
) -> float:
    """Seconds optuna-dashboard takes to show `study_name`'s Pareto front in headless Chromium.

    The server is started fresh (``optuna-dashboard STORAGE --host 127.0.0.1 --port P``, the
    console script beside this interpreter) and warmed up: the browser loads its study list
    once, so the page's JavaScript is loaded and the storage open. The time then runs from
    navigating to ``/dashboard/studies/<id>`` until the first trial point of the front is
    displayed: it includes fetching all the study's trials (``/api/studies/<id>``, which
    the server has not cached yet) and drawing them.

    Args:
        storage_url: An Optuna storage URL optuna-dashboard can open.
        study_name: A study with two or more objectives (one has no Pareto front).
        timeout_s: How long the front may take before TimeoutError.
        screenshot: Where to save a PNG of the drawn page, if anywhere.

    Raises:
        KeyError: no study named `study_name` in the storage.
        TimeoutError: the front was not drawn within `timeout_s`.
        RuntimeError: the dashboard did not start (the message holds its log).
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).with_name("optuna-dashboard")),
        storage_url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with serve(command, f"{base}/api/meta", timeout_s=60):
        study_id = _study_id(base, study_name)
        with headless_chromium() as driver:
            driver.get(f"{base}/dashboard")
            wait_for(driver, _STUDY_LINK.format(id=study_id), timeout_s=60)
            start = time.perf_counter()
            driver.get(f"{base}/dashboard/studies/{study_id}")
            wait_for(driver, PARETO_POINT, timeout_s=timeout_s)
            seconds = time.perf_counter() - start
            if screenshot is not None:
                save_screenshot(driver, screenshot)
    return seconds


def _study_id(base: str, name: str) -> int:
    """The dashboard's id of study `name`, from its study list (``/api/studies``)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{base}/api/studies", timeout=60) as response:
        studies = json.load(response)["study_summaries"]
    ids = {study["study_name"]: int(study["study_id"]) for study in studies}
    if name not in ids:
        known = ", ".join(sorted(ids)) or "none"
        raise KeyError(f"no study named {name!r} in the dashboard's storage; studies: {known}")
    return ids[name]


def main() -> None:
    from tests.synthetic import write_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=1, help="fresh dashboard each time")
    parser.add_argument("--screenshot", help="save a PNG of the drawn page here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'synthetic.db'}"
        start = time.perf_counter()
        write_study(url, "synthetic", args.trials)
        print(f"wrote {args.trials} synthetic trials in {time.perf_counter() - start:.1f} s")
        for repeat in range(args.repeats):
            seconds = time_optuna_dashboard(url, "synthetic", screenshot=args.screenshot)
            print(f"run {repeat + 1}: Pareto front drawn in {seconds:.2f} s")


if __name__ == "__main__":
    main()
