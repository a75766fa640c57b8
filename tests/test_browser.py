"""The real-browser helpers against a real throwaway server and headless Chromium."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.browser import (
    chromium_available,
    free_port,
    headless_chromium,
    save_screenshot,
    serve,
    wait_for,
)

needs_chromium = pytest.mark.skipif(
    not chromium_available(), reason="needs /usr/bin/chromium, /usr/bin/chromedriver, selenium"
)


def http_server(folder: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "-d",
        str(folder),
    ]


def test_serve_waits_for_the_server_and_kills_its_group(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>hi</h1>")
    port = free_port()
    with serve(http_server(tmp_path, port), f"http://127.0.0.1:{port}/", 20) as server:
        assert server.process.poll() is None
    assert server.process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(server.process.pid, 0)  # nothing of its group is left


def test_serve_reports_a_server_that_dies_with_its_log() -> None:
    crash = [sys.executable, "-c", "import sys; sys.exit('port already in use')"]
    expected = r"(?s)exited with code 1 .*log ends:.*port already in use"
    with (
        pytest.raises(RuntimeError, match=expected),
        serve(crash, f"http://127.0.0.1:{free_port()}/", 20),
    ):
        pass


def test_serve_gives_up_after_its_timeout() -> None:
    silent = [
        sys.executable,
        "-c",
        "import time; print('still starting', flush=True); time.sleep(60)",
    ]
    expected = r"(?s)did not answer 200 within 0\.5 s .*log ends:.*still starting"
    with (
        pytest.raises(RuntimeError, match=expected),
        serve(silent, f"http://127.0.0.1:{free_port()}/", 0.5),
    ):
        pass


@needs_chromium
def test_wait_for_times_a_displayed_element_and_explains_a_missing_one(tmp_path: Path) -> None:
    page = '<h1 id="title">Results</h1><p class="hidden" style="display:none">x</p>'
    (tmp_path / "index.html").write_text(page)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with serve(http_server(tmp_path, port), url, 20), headless_chromium(800, 600) as driver:
        driver.get(url)
        assert 0 <= wait_for(driver, "#title", timeout_s=10) < 10
        with pytest.raises(TimeoutError, match=r"'\.hidden' was displayed within 0\.3 s.*Results"):
            wait_for(driver, ".hidden", timeout_s=0.3)
        shot = save_screenshot(driver, tmp_path / "shots" / "page.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
