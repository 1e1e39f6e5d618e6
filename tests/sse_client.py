"""A small Server-Sent Events client for the tests: reads a real HTTP stream on a thread."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str | None
    data: str
    comment: str | None = None

    @property
    def payload(self) -> Any:
        return json.loads(self.data)


class SseStream:
    """``with SseStream(url, path, headers=...) as stream:``; ``stream.status_code`` tells if it opened."""

    def __init__(
        self, base_url: str, path: str, *, headers: dict[str, str] | None = None, params: Any = None
    ) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(30, read=None))
        self._request = self._client.build_request("GET", path, headers=headers, params=params)
        self._events: queue.Queue[SseEvent | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.received: list[SseEvent] = []
        self.body: bytes = b""

    def __enter__(self) -> SseStream:
        self.response = self._client.send(self._request, stream=True)
        self.status_code = self.response.status_code
        if self.status_code == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self.body = self.response.read()
        return self

    def __exit__(self, *exc: object) -> None:
        # Closing the response does not wake a thread blocked reading it: shut the socket down, as a
        # browser tab closing would, so the reader ends and the server sees the client go.
        network_stream = self.response.extensions.get("network_stream")
        sock = network_stream.get_extra_info("socket") if network_stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.response.close()
        self._client.close()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        try:
            for line in self.response.iter_lines():
                if line == "":
                    if data:  # as browsers do: no data, no event (a bare ``retry:`` is not one)
                        self._events.put(
                            SseEvent(id=fields.get("id"), event=fields.get("event"), data="\n".join(data))
                        )
                    fields, data = {}, []
                elif line.startswith(":"):
                    self._events.put(SseEvent(id=None, event=None, data="", comment=line[1:].strip()))
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data.append(value)
                    else:
                        fields[name] = value
        except Exception:  # noqa: S110 - the stream was closed by the test
            pass
        finally:
            self._events.put(None)

    def next_event(self, timeout: float = 10) -> SseEvent | None:
        """The next real event (comments are skipped); ``None`` when the stream ended."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no event arrived")
            try:
                event = self._events.get(timeout=remaining)
            except queue.Empty as exc:
                raise TimeoutError("no event arrived") from exc
            if event is None:
                return None
            if event.comment is not None:
                continue
            self.received.append(event)
            return event

    def wait_connected(self, timeout: float = 10) -> None:
        """Wait for the server's ``: connected`` comment: from then on, new events are delivered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self._events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if event is not None and event.comment == "connected":
                return
            if event is None:
                raise AssertionError("the stream ended before it was connected")
            if event.comment is None:
                self.received.append(event)
        raise TimeoutError("the stream never said it was connected")

    def until(self, predicate: Callable[[SseEvent], bool], timeout: float = 10) -> list[SseEvent]:
        """Every event up to and including the first that matches ``predicate``."""
        seen: list[SseEvent] = []
        while True:
            event = self.next_event(timeout)
            if event is None:
                raise AssertionError(f"the stream ended; got {seen}")
            seen.append(event)
            if predicate(event):
                return seen
