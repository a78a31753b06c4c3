"""Path parameters every route shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

# Row ids are SQLite INTEGERs: a larger number cannot name a row, so it is refused with a 422
# before it reaches the store (where it would overflow).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="A row id (1 to 2^63 - 1).")]
