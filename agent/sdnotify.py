"""systemd's notify protocol: one datagram on the AF_UNIX socket named by ``NOTIFY_SOCKET``.

A leading ``@`` names the abstract namespace. With no ``NOTIFY_SOCKET`` every call is a no-op,
so the daemon runs the same under systemd, in a terminal and in tests.
"""

from __future__ import annotations

import logging
import os
import socket

from agent.log import kv

log = logging.getLogger(__name__)


class SdNotifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @property
    def watchdog_s(self) -> float | None:
        """The watchdog period systemd asked for, if any (WATCHDOG_USEC, for this process)."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 1_000_000
        except ValueError:
            return None

    def send(self, *lines: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode("utf-8"), self.address)
        except OSError as exc:
            log.warning(kv("sdnotify.failed", error=exc.strerror or str(exc)))
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text.splitlines()[0] if text else ''}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")
