"""Types shared by the config sections: durations, secrets, paths relative to the config file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, ValidationInfo

from agent.urls import has_password

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``90``, ``"90s"``, ``"5m"``, ``"2h"``, ``"7d"``, ``"1w"`` → seconds (float, >= 0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m, 2h or 7d, found {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a duration >= 0, found {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_S[match.group(2)]
    raise ValueError(f"expected a duration such as 30s, 5m, 2h or 7d, found {value!r}")


def check_http_url(value: str, *, instead: str) -> str:
    """``value`` when it is an http(s) URL without a password; ``instead`` says where the password
    goes (a password in a URL would reach logs, links and messages that show the URL)."""
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"expected an http:// or https:// URL, found {value!r}")
    if has_password(value):
        raise ValueError(f"expected no password in the URL ({instead}), found one")
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A duration in seconds; written in YAML as ``30s``, ``5m``, ``2h``, ``7d`` or a number."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_UNIT_B = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_size(value: Any) -> int:
    """``1048576``, ``"512KiB"``, ``"16MiB"``, ``"10MB"`` → bytes (int, >= 0)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(float(match.group(1)) * _UNIT_B[match.group(2)])
    raise ValueError(f"expected a size such as 512KiB, 16MiB or 10MB, found {value!r}")


Bytes = Annotated[int, BeforeValidator(parse_size)]
"""A size in bytes; written in YAML as ``512KiB``, ``16MiB``, ``10MB`` or a number."""


def _relative_to_config(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        return path
    return value


ConfigPath = Annotated[Path, BeforeValidator(_relative_to_config)]
"""A path; a relative one is taken relative to the directory of the config file."""


def check_regex(value: str) -> str:
    """A regular expression from the config, refused with a clear message when it cannot compile."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"expected a regular expression, found {value!r} ({exc})") from None
    return value


class Section(BaseModel):
    """Base of every config model: unknown keys are errors, values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


__all__ = ["Bytes", "ConfigPath", "Seconds", "SecretStr", "Section", "check_regex", "parse_duration", "parse_size"]
