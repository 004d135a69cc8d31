"""A Server-Sent Events client for the tests: reads a stream in a thread, event by event."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

STREAM_PATH = "/api/scoreboard/stream"


@dataclass
class Event:
    event: str  # "message" when unnamed; ":" for a comment line
    data: str = ""
    id: str | None = None
    retry: int | None = None
    at: float = 0.0  # monotonic time of arrival

    def json(self):
        return json.loads(self.data)


class Stream:
    """One open stream. ``status`` and ``headers`` are those of the response."""

    def __init__(self, base: str, token: str | None = None, *, via: str = "header", last_event_id: str | None = None,
                 query: dict | None = None, headers: dict | None = None, timeout: float = 10):
        parts = urlsplit(base)
        params = dict(query or {})
        headers = {"Accept": "text/event-stream", **(headers or {})}
        if token and via == "header":
            headers["Authorization"] = f"Bearer {token}"
        elif token and via == "query":
            params["access_token"] = token
        elif token and via == "cookie":
            headers["Cookie"] = f"access_token={token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.conn.request("GET", STREAM_PATH + ("?" + urlencode(params) if params else ""), headers=headers)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = self.response.headers
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.ended = threading.Event()
        self.seen: list[Event] = []
        if self.status == 200:
            self.conn.sock.settimeout(None)
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self.body = json.loads(self.response.read() or b"null")
            self.ended.set()

    def _read(self) -> None:
        fields: dict = {}
        data: list[str] = []
        try:
            while True:
                raw = self.response.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if data or "event" in fields or "retry" in fields or "id" in fields:
                        self.events.put(Event(fields.get("event", "message"), "\n".join(data), fields.get("id"),
                                              fields.get("retry"), time.monotonic()))
                    fields, data = {}, []
                elif line.startswith(":"):
                    self.events.put(Event(":", line[1:].strip(), at=time.monotonic()))
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data.append(value)
                    elif name == "retry":
                        fields["retry"] = int(value)
                    else:
                        fields[name] = value
        except (OSError, http.client.HTTPException, ValueError, AttributeError):  # AttributeError: closed meanwhile
            pass
        finally:
            self.ended.set()
            self.events.put(None)

    def next(self, timeout: float = 10, skip_pings: bool = True) -> Event:
        """The next event (comments skipped unless asked for)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no event within {timeout}s; seen {[e.event for e in self.seen]}")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event is None:
                self.events.put(None)
                raise AssertionError(f"the stream ended; seen {[(e.event, e.data[:60]) for e in self.seen]}")
            self.seen.append(event)
            if skip_pings and event.event == ":":
                continue
            return event

    def until(self, predicate, timeout: float = 10, skip_pings: bool = True) -> Event:
        """The first event for which ``predicate(event)`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(deadline - time.monotonic(), 0.001), skip_pings)
            if predicate(event):
                return event

    def wait_end(self, timeout: float = 10) -> list[Event]:
        """Wait until the server ends the stream; return the events read until then."""
        if not self.ended.wait(timeout):
            raise AssertionError(f"the stream did not end within {timeout}s")
        rest = []
        while True:
            event = self.events.get()
            if event is None:
                self.events.put(None)
                return rest
            self.seen.append(event)
            rest.append(event)

    def received(self) -> list[Event]:
        """Every event received so far (read into ``seen``), without waiting for more."""
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return self.seen
            if event is None:
                self.events.put(None)
                return self.seen
            self.seen.append(event)

    def close(self) -> None:
        try:
            self.conn.sock and self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


class EventSource:
    """A viewer that reconnects as a browser's ``EventSource`` does: when its stream ends or
    cannot be opened, again after ``reconnect_s``, with the id of the last event it got
    (``Last-Event-ID``). ``seen`` holds the events of every connection, in order."""

    def __init__(self, base: str, token: str, reconnect_s: float = 0.5):
        self.base = base
        self.token = token
        self.reconnect_s = reconnect_s
        self.seen: list[Event] = []
        self.last_id: str | None = None
        self.connections = 0
        self.refused: list[int] = []  # statuses of the attempts the server turned down
        self._stream: Stream | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                stream = Stream(self.base, self.token, last_event_id=self.last_id, timeout=5)
            except (OSError, http.client.HTTPException):
                self._closed.wait(self.reconnect_s)
                continue
            if stream.status != 200:
                self.refused.append(stream.status)
                self._closed.wait(self.reconnect_s)
                continue
            self.connections += 1
            self._stream = stream
            while (event := stream.events.get()) is not None:
                self.seen.append(event)
                if event.id:
                    self.last_id = event.id
            stream.close()
            self._closed.wait(self.reconnect_s)

    def events(self, name: str, after: float = 0.0) -> list[Event]:
        """The events called ``name`` that arrived after the monotonic time ``after``."""
        return [e for e in list(self.seen) if e.event == name and e.at > after]

    def close(self) -> None:
        self._closed.set()
        if self._stream is not None:
            self._stream.close()
        self._thread.join(10)
