"""``whatwut serve`` starts Wacanda beside it, as the ``wacanda serve`` command in a child process.

WhatWut never imports Wacanda (they talk over HTTP), so it launches it by name and tells its own
proxy routes where it listens (``WACANDA_URL``) and which service key to send (``WACANDA_API_KEY``).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import structlog

from whatwut.knowledge_proxy.client import API_KEY_FILE, load_or_create_key
from whatwut.settings import Settings

log = structlog.get_logger(__name__)
PR_SET_PDEATHSIG = 1


class WacandaPortInUse(RuntimeError):
    """The port Wacanda would listen on is taken: starting it anyway would leave WhatWut without
    its AI agent and knowledge base, with nothing said."""


def start_wacanda(settings: Settings, *, port: int) -> subprocess.Popen[bytes] | None:
    """Start ``wacanda serve`` on 127.0.0.1 (``WACANDA_PORT``, else ``port``); stopped at exit.

    Does nothing when ``WACANDA_URL`` already points at a Wacanda deployed elsewhere. Raises
    ``WacandaPortInUse`` when another program listens on the port.
    """
    if os.environ.get("WACANDA_URL"):
        return None
    port = int(os.environ.get("WACANDA_PORT") or port)
    if not _can_listen_on(port):
        raise WacandaPortInUse(
            f"port {port}, where Wacanda (the AI agent) listens, is in use: stop what holds it,"
            " choose another with WACANDA_PORT, or start with --no-wacanda"
        )
    key = os.environ.get("WACANDA_API_KEY") or load_or_create_key(settings.data_dir / API_KEY_FILE)
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
    stopping = threading.Event()
    atexit.register(_stop, process, stopping)
    threading.Thread(target=_report_exit, args=(process, stopping), name="wacanda-watch", daemon=True).start()
    log.info("wacanda.started", pid=process.pid, url=os.environ["WACANDA_URL"])
    return process


def _can_listen_on(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:``port`` now (with SO_REUSEADDR, as uvicorn binds)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _report_exit(process: subprocess.Popen[bytes], stopping: threading.Event) -> None:
    """Say so when Wacanda ends while WhatWut still serves: answers and knowledge-base pages stop
    working, and the operator must know why."""
    code = process.wait()
    if not stopping.is_set():
        log.error("wacanda.exited", exit_code=code, hint="restart whatwut serve to start it again")


def _die_with_parent() -> None:
    """In the child: get SIGTERM when ``whatwut serve`` ends, however it ends (uvicorn re-raises
    the signal that stopped it, so ``atexit`` handlers do not always run)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(process: subprocess.Popen[bytes], stopping: threading.Event) -> None:
    stopping.set()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
