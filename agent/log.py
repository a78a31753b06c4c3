"""One event a line, key=value, to stderr (journald keeps it).

Use ``log.info(kv("cycle.done", duration_s=1.42, series=812))``. Values with spaces, quotes
or ``=`` are quoted; label values always are. ``setup`` is given the config's secrets
(``AgentConfig.secrets()``); the formatter replaces each by ``***`` in any line that would carry it.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

MIN_SECRET_CHARS = 4  # shorter values are too common to replace safely


# user:password@ in a URL: the password goes, the user stays (it tells which account)
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):(?P<password>[^/@\s]*)@")


def scrub_url_credentials(text: str) -> str:
    """``https://ops:hunter2@prom`` → ``https://ops:***@prom``, wherever it stands in ``text``."""
    return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)


# C0 controls, DEL and C1 controls: a NUL, a BEL or an escape sequence from a scraped target must
# not reach a terminal or split a journal line.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters written as ``\\xNN`` (newline and tab kept)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, datetime):
        text = value.astimezone(timezone.utc).isoformat(timespec="seconds")
    elif isinstance(value, Mapping):
        text = printable(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        text = printable(str(value))
    if text == "" or any(c in text for c in ' "=\n\t\\'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def kv(event: str, **fields: Any) -> str:
    """``event=NAME k=v ...``; None values are left out."""
    parts = [f"event={event}"]
    parts += [f"{k}={_value(v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=… logger=… event=… k=v``, tracebacks indented below; each of ``secrets``
    and any password in a URL replaced by ``***``."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        # longest first: a secret that contains another is replaced whole
        self.secrets: tuple[str, ...] = tuple(sorted(
            {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return scrub_url_credentials(text)

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        message = record.getMessage()
        if not message.startswith("event="):
            message = "msg=" + _value(message)
        line = f"ts={ts} level={record.levelname.lower()} logger={record.name} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.scrub(line)


# Loggers of libraries that can repeat one error thousands of times a second: asyncio's accept
# loop at the file-descriptor limit is the known case.
NOISY_LIBRARIES = ("asyncio", "uvicorn", "uvicorn.error")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+|fd=-?\d+")


class RepeatFilter(logging.Filter):
    """Lets the first of a run of like records through, then one per ``window_s`` carrying how
    many were held back (``suppressed=N``). Records are alike when their logger and the first
    line of their message (addresses and fd numbers aside) are."""

    MAX_KEYS = 256

    def __init__(self, names: tuple[str, ...] = NOISY_LIBRARIES, window_s: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.names = names
        self.window_s = window_s
        self.monotonic = monotonic
        self._seen: OrderedDict[tuple[str, str], list[float]] = OrderedDict()  # key -> [last passed at, held back]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in self.names:
            return True
        first_line = str(record.msg).split("\n", 1)[0]
        key = (record.name, _ADDRESS.sub("", first_line)[:120])
        now = self.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.window_s:
                seen[1] += 1
                return False
            held = int(seen[1]) if seen is not None else 0
            self._seen[key] = [now, 0]
            self._seen.move_to_end(key)
            while len(self._seen) > self.MAX_KEYS:
                self._seen.popitem(last=False)
        if held:
            record.msg = f"{record.msg} (suppressed={held} like it in the last {self.window_s:g}s)"
        return True


def setup(level: str = "info", secrets: Iterable[str | None] = ()) -> None:
    """One logfmt handler on the root logger, replacing the one an earlier call installed. The
    secrets that handler scrubbed stay scrubbed (after a reload, a line may still carry an old one)."""
    root = logging.getLogger()
    kept: list[str] = []
    for handler in list(root.handlers):
        if getattr(handler, "_aiops", False):
            if isinstance(handler.formatter, LogfmtFormatter):
                kept += handler.formatter.secrets
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter([*kept, *secrets]))
    handler.addFilter(RepeatFilter())
    handler._aiops = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("urllib3", "matplotlib", "PIL", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
