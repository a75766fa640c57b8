"""Real-browser helpers for app tests and benchmarks: headless Chromium and throwaway servers.

Debian's ``chromium`` and ``chromium-driver`` drive headless through selenium. Nothing here
downloads a browser or a driver: both paths are given explicitly, so Selenium Manager never
runs. Servers are real and throwaway (STYLE.md): started on a free loopback port in their own
process group, waited for until they answer, and killed with their whole group afterwards.

Example:
    >>> port = free_port()  # doctest: +SKIP
    >>> with serve(["python", "-m", "http.server", str(port)], f"http://127.0.0.1:{port}/", 10):
    ...     with headless_chromium() as driver:
    ...         driver.get(f"http://127.0.0.1:{port}/")
    ...         seconds = wait_for(driver, "a", timeout_s=5)
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "Server",
    "chromium_available",
    "free_port",
    "headless_chromium",
    "page_text",
    "save_screenshot",
    "serve",
    "wait_for",
]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Headless as root on a closed network: no sandbox (root), no GPU, /tmp instead of a small
#: /dev/shm, and none of the background traffic (updates, sync, QUIC probes) that would stall
#: or pollute timings. A fresh --user-data-dir is added per browser.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

_LOG_TAIL_CHARS = 3000


def chromium_available() -> bool:
    """Whether real-browser tests can run here: Chromium, its driver and selenium installed.

    Tests that need a browser skip with this, saying why (`pytest.mark.skipif`).
    """
    executables = all(os.access(path, os.X_OK) for path in (CHROMIUM, CHROMEDRIVER))
    return executables and importlib.util.find_spec("selenium") is not None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Another process could take it before the caller binds it; `serve` then fails with the
    server's own error in its log tail, which says so.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def headless_chromium(width: int = 1400, height: int = 1000) -> Iterator[WebDriver]:
    """A headless Chromium WebDriver with a `width` x `height` window and a fresh profile.

    The browser quits and its profile is deleted on exit, whatever happened inside.

    Raises:
        RuntimeError: Chromium or chromedriver is not installed (see `chromium_available`).
    """
    if not chromium_available():
        raise RuntimeError(
            f"headless Chromium needs {CHROMIUM}, {CHROMEDRIVER} and selenium; "
            "install Debian's chromium and chromium-driver and `pip install selenium`"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tuner-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    service = Service(executable_path=CHROMEDRIVER, log_output=os.devnull)
    try:
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@dataclass(frozen=True)
class Server:
    """A server started by `serve`: its process (leader of its own group) and its log file."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The end of what the server wrote to stdout and stderr."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-chars:]


@contextlib.contextmanager
def serve(
    cmd: Sequence[str],
    url: str,
    timeout_s: float,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Iterator[Server]:
    """Run `cmd` as a server until the block ends; enter the block once `url` answers 200.

    The server runs in its own process group with stdout and stderr in a temporary log, and
    the whole group (workers and reloaders included) is killed on exit: SIGTERM, then SIGKILL
    after 5 s.

    Raises:
        RuntimeError: the server exited, or `url` did not answer 200 within `timeout_s`; the
            message holds the end of the server's log.
    """
    with tempfile.TemporaryDirectory(prefix="tuner-serve-") as folder:
        log = Path(folder) / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                list(cmd),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, killed as one
                env=None if env is None else dict(env),
                cwd=cwd,
            )
        server = Server(process, log, url)
        try:
            _wait_until_served(server, timeout_s)
            yield server
        finally:
            _kill_group(process)


def _wait_until_served(server: Server, timeout_s: float) -> None:
    # No proxy: a proxy configured for package downloads must not see loopback requests.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        code = server.process.poll()
        if code is not None:
            raise RuntimeError(
                f"server {server.process.args!r} exited with code {code} before {server.url} "
                f"answered; its log ends:\n{server.log_tail()}"
            )
        try:
            with opener.open(server.url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"server {server.process.args!r}: {server.url} did not answer 200 within "
                f"{timeout_s:g} s (last: {last}); its log ends:\n{server.log_tail()}"
            )
        time.sleep(0.1)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    # Whatever is left: a leader that ignored SIGTERM, or children that outlived it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def page_text(driver: WebDriver, chars: int = 2000) -> str:
    """The page's visible text (its body's innerText), cut to `chars`, for error messages."""
    try:
        text = driver.execute_script("return document.body ? document.body.innerText : ''")
    except Exception as exc:  # a crashed or navigating page still deserves an error message
        return f"(page text unavailable: {type(exc).__name__})"
    text = " ".join(str(text).split())
    return text if len(text) <= chars else text[: chars - 3] + "..."


def wait_for(driver: WebDriver, css: str, timeout_s: float) -> float:
    """Seconds until an element matching the CSS selector `css` is displayed.

    Polls every 50 ms. Only the first five matches are checked, so a plot with thousands of
    points costs one round trip per poll, not thousands.

    Raises:
        TimeoutError: nothing matching `css` was displayed within `timeout_s`; the message holds
            the URL and the page's visible text.
    """
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def displayed(drv: WebDriver) -> bool:
        return any(e.is_displayed() for e in drv.find_elements(By.CSS_SELECTOR, css)[:5])

    start = time.perf_counter()
    wait = WebDriverWait(
        driver, timeout_s, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]
    )
    try:
        wait.until(displayed)
    except TimeoutException:
        raise TimeoutError(
            f"no element matching {css!r} was displayed within {timeout_s:g} s at "
            f"{driver.current_url}; the page shows: {page_text(driver)!r}"
        ) from None
    return time.perf_counter() - start


def save_screenshot(driver: WebDriver, path: str | Path) -> Path:
    """Save a PNG of the browser's viewport to `path` (folders created) and return the path.

    Raises:
        RuntimeError: the browser could not write the screenshot.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(target)):
        raise RuntimeError(f"the browser could not save a screenshot to {target}")
    return target
