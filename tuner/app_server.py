"""`tuner app`: start the Streamlit results app on the code in the `app` package.

The storage and study are checked here first, so a wrong path or name is the usual one-line
error instead of a page. Streamlit then replaces this process (Ctrl-C stops it as usual).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from tuner.errors import UserError
from tuner.storage import load_study, open_storage

#: Streamlit settings for a local results viewer: no file watching, no usage statistics,
#: no browser opened on a headless machine.
_STREAMLIT_FLAGS = (
    "--server.headless=true",
    "--server.fileWatcherType=none",
    "--server.runOnSave=false",
    "--browser.gatherUsageStats=false",
    "--client.toolbarMode=minimal",
)


def entry_script() -> Path:
    """The app's main script, from a checkout or an installed wheel alike.

    Found, not imported: the app is the layer above tuner, and Streamlit runs it as a script.
    """
    spec = importlib.util.find_spec("app")
    if spec is None or spec.origin is None:
        raise UserError("tuner app: the app package is not installed; reinstall tuner")
    return Path(spec.origin).resolve().parent / "main.py"


#: How the app learns its storage and study: the environment, not the command line, where
#: `ps` would show a database password to every user of the machine.
STORAGE_ENV = "TUNER_APP_STORAGE"
STUDY_ENV = "TUNER_APP_STUDY"


def streamlit_command(*, host: str, port: int) -> list[str]:
    """The command line that serves the app."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(entry_script()),
        f"--server.address={host}",
        f"--server.port={port}",
        *_STREAMLIT_FLAGS,
    ]


def serve(storage: str, study: str | None, *, host: str, port: int) -> None:
    """Check `storage` (and `study`), then become the Streamlit server. Does not return."""
    if study:
        load_study(study, storage)
    else:
        open_storage(storage, create=False)
    env = {k: v for k, v in os.environ.items() if k != STUDY_ENV} | {STORAGE_ENV: storage}
    if study:
        env[STUDY_ENV] = study
    command = streamlit_command(host=host, port=port)
    os.execve(command[0], command, env)
