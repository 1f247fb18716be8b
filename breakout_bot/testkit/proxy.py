"""A TCP proxy on loopback between the bot and the simulator, owned by a test: it carries bytes both
ways and, on demand, breaks the network the way real ones break.

* `reset_all()`: every open connection gets a TCP reset (RST), both ways (REST pools and websockets).
* `reset_next(prefix, after)`: the next HTTP request starting with `prefix` (e.g. b"POST /v2/orders")
  is reset before a byte of it reaches the server, or (after=True) once the server has answered it:
  the order arrived, the answer did not.
* `blackhole(seconds)`: connections stay open and carry nothing (half-open: requests go unanswered,
  websockets fall silent); new ones are accepted and carry nothing either; at the end they are reset.

Connections whose first request is the simulator's control API (``/sim/``: the bot's remote clock) are
never faulted: they are the test's channel, not the bot's network. Loopback only, threads only.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

CONTROL_PREFIXES = (b"GET /sim/", b"POST /sim/")
_CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), not FIN: the peer sees 'connection reset by peer'. SHUT_RD first
    wakes a pump thread blocked reading it (the kernel releases the socket, and sends the RST, only
    when that read returns)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(eq=False)  # hashed by identity: the proxy keeps its links in a set
class _Link:
    client: socket.socket
    upstream: socket.socket | None = None
    control: bool | None = None  # None: its first request not seen yet
    dead: bool = False  # black-holed: carries nothing until it is reset
    reset_on_answer: bool = False  # the request went through; its answer must not
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self, rst: bool = True) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if rst:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


@dataclass
class ProxyStats:
    connections: int = 0
    resets: int = 0
    resets_before: int = 0
    resets_after: int = 0
    blackholed: int = 0


class FaultyProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        if upstream_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy is for loopback only")
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._armed: list[tuple[bytes, bool]] = []
        self._hole_until = 0.0
        self._stopped = threading.Event()
        self.stats = ProxyStats()
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.reset_all()

    # ------------------------------------------------------------------ faults
    def reset_all(self) -> int:
        """RST every open connection of the bot's (not the control API's); returns how many."""
        with self._lock:
            links = [link for link in self._links if link.control is False]
            self._links.difference_update(links)
        for link in links:
            link.close()
        self.stats.resets += len(links)
        return len(links)

    def reset_next(self, prefix: bytes, after: bool = False) -> None:
        with self._lock:
            self._armed.append((prefix, after))

    def blackhole(self, seconds: float) -> None:
        with self._lock:
            self._hole_until = max(self._hole_until, time.monotonic() + seconds)
            for link in self._links:
                if not link.control:
                    link.dead = True
        threading.Thread(target=self._end_hole, args=(seconds,), daemon=True).start()

    def _holing(self) -> bool:
        return time.monotonic() < self._hole_until

    def _end_hole(self, seconds: float) -> None:
        time.sleep(seconds)
        while self._holing():
            time.sleep(0.05)
        with self._lock:
            dead = [link for link in self._links if link.dead]
            self._links.difference_update(dead)
        for link in dead:
            link.close()
        self.stats.blackholed += len(dead)

    # ------------------------------------------------------------------ plumbing
    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            link = _Link(client)
            with self._lock:
                self._links.add(link)
                link.dead = self._holing()
            self.stats.connections += 1
            threading.Thread(target=self._client_to_server, args=(link,), daemon=True).start()

    def _forget(self, link: _Link, rst: bool) -> None:
        with self._lock:
            self._links.discard(link)
        link.close(rst)

    def _take_rule(self, chunk: bytes) -> bool | None:
        """The armed rule this request triggers (its `after` flag), or None."""
        with self._lock:
            for i, (prefix, after) in enumerate(self._armed):
                if chunk.startswith(prefix):
                    del self._armed[i]
                    return after
        return None

    def _client_to_server(self, link: _Link) -> None:
        try:
            while True:
                chunk = link.client.recv(_CHUNK)
                if not chunk:
                    self._forget(link, rst=False)
                    return
                if link.control is None:
                    link.control = chunk.startswith(CONTROL_PREFIXES)
                    if link.control:
                        link.dead = False
                if link.dead and not link.control:
                    continue  # black-holed: swallowed, never answered
                rule = None if link.control else self._take_rule(chunk)
                if rule is False:  # reset before the request reaches the server
                    self.stats.resets_before += 1
                    self._forget(link, rst=True)
                    return
                if link.upstream is None:
                    link.upstream = socket.create_connection(self._upstream, timeout=10)
                    link.upstream.settimeout(None)
                    threading.Thread(target=self._server_to_client, args=(link,), daemon=True).start()
                if rule is True:
                    link.reset_on_answer = True
                link.upstream.sendall(chunk)
        except OSError:
            self._forget(link, rst=True)

    def _server_to_client(self, link: _Link) -> None:
        upstream = link.upstream
        assert upstream is not None
        try:
            while True:
                chunk = upstream.recv(_CHUNK)
                if not chunk:
                    self._forget(link, rst=False)
                    return
                if link.reset_on_answer:  # the server answered: the client never hears it
                    self.stats.resets_after += 1
                    self._forget(link, rst=True)
                    return
                if link.dead and not link.control:
                    continue
                link.client.sendall(chunk)
        except OSError:
            self._forget(link, rst=True)
