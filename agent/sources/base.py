"""What a source is, and why one failed: the samples it returns live in ``agent.flow.samples``."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import pandas as pd

from agent.errors import SourceError
from agent.flow.samples import Samples


class Source(Protocol):
    """A metric source: samples for its series over ``[start, end]``."""

    name: str

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp) -> Samples: ...


class FailureKind(StrEnum):
    """Why a fetch or scrape produced nothing: the ``kind`` label of aiops_source_errors_total."""

    CONNECTION = "connection"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http_status"
    INVALID_JSON = "invalid_json"
    HTML = "html"
    PARSE = "parse"
    API_ERROR = "api_error"
    FILE = "file"
    REDIRECTS = "redirects"  # a redirect loop or chain past requests' limit
    PROTOCOL = "protocol"  # a broken HTTP answer: bad chunking, bad compression, cut short
    DEADLINE = "deadline"  # still sending when the target's total deadline passed
    TOO_LARGE = "too_large"  # a body past the size cap (counted inflated, for a gzip body)
    ENCODING = "encoding"  # a body in an encoding not asked for (br, deflate), or a gzip that does not inflate
    INTERNAL = "internal"  # a bug of ours met on this target's data: logged with its traceback


class FetchError(SourceError):
    """One target or query could not be read; its series become gaps for this cycle."""

    def __init__(self, source: str, target: str, kind: FailureKind, problem: str) -> None:
        self.kind = kind
        super().__init__(source, target, problem)
