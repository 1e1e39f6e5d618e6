"""``whatwut serve`` starts Wacanda beside it, as the ``wacanda serve`` command in a child process.

WhatWut never imports Wacanda (they talk over HTTP), so it launches it by name and tells its own
proxy routes where it listens (``WACANDA_URL``) and which service key to send (``WACANDA_API_KEY``).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

import structlog

from whatwut.knowledge_proxy.client import API_KEY_FILE, load_or_create_key
from whatwut.settings import Settings

log = structlog.get_logger(__name__)
PR_SET_PDEATHSIG = 1


def start_wacanda(settings: Settings, *, port: int) -> subprocess.Popen[bytes] | None:
    """Start ``wacanda serve`` on 127.0.0.1 (``WACANDA_PORT``, else ``port``); stopped at exit.

    Does nothing when ``WACANDA_URL`` already points at a Wacanda deployed elsewhere.
    """
    if os.environ.get("WACANDA_URL"):
        return None
    key = os.environ.get("WACANDA_API_KEY") or load_or_create_key(settings.data_dir / API_KEY_FILE)
    port = int(os.environ.get("WACANDA_PORT") or port)
    script = Path(sys.executable).with_name("wacanda")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "wacanda"]
    env = {
        **os.environ,
        "WACANDA_API_KEY": key,
        "WACANDA_HOST": "127.0.0.1",
        "WACANDA_PORT": str(port),
        "WHATWUT_DATA_DIR": str(settings.data_dir),
    }
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    process = subprocess.Popen(  # noqa: S603 (our own command)
        [*command, "serve"], env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None
    )
    os.environ["WACANDA_URL"] = f"http://127.0.0.1:{port}"
    os.environ["WACANDA_API_KEY"] = key
    atexit.register(_stop, process)
    log.info("wacanda.started", pid=process.pid, url=os.environ["WACANDA_URL"])
    return process


def _die_with_parent() -> None:
    """In the child: get SIGTERM when ``whatwut serve`` ends, however it ends (uvicorn re-raises
    the signal that stopped it, so ``atexit`` handlers do not always run)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
