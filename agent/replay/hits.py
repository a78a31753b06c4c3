"""A replay's hits, kept a day a file in its work folder (JSON lines), each with the alarm
chance it was judged at, and the signals judged that day: what re-thresholding reads back."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from detectors.base import Direction, Hit


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptHit:
    """A hit and the alarm chance its test had (None: a detector that gives no chances)."""

    hit: Hit
    level: float | None

    def kept_at(self, factor: float) -> bool:
        """Whether the hit is still a hit with every page budget ``factor`` times as large: a
        calibrated detector's hit is a point whose chance is at most the alarm chance, and the
        alarm chance grows in proportion to the budget (capped at one half)."""
        if self.level is None or self.hit.chance is None:
            return True
        return self.hit.chance <= min(self.level * factor, 0.5)


def _path(work_dir: Path, number: int) -> Path:
    return work_dir / "hits" / f"day-{number:04d}.jsonl"


def write_day_hits(work_dir: Path, number: int, kept: list[KeptHit], judged: Collection[str]) -> None:
    path = _path(work_dir, number)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [json.dumps({"judged": sorted(judged)})]
    lines += [json.dumps({"hit": asdict(k.hit), "level": k.level}, default=str) for k in kept]
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(path)


def read_day_hits(work_dir: Path, number: int) -> tuple[list[KeptHit], frozenset[str]]:
    lines = _path(work_dir, number).read_text().splitlines()
    judged = frozenset(json.loads(lines[0])["judged"])
    out = []
    for line in lines[1:]:
        raw = json.loads(line)
        hit = raw["hit"]
        hit.update(ts=pd.Timestamp(hit["ts"]).to_pydatetime(), direction=Direction(hit["direction"]),
                   began_at=None if hit["began_at"] is None else pd.Timestamp(hit["began_at"]).to_pydatetime())
        out.append(KeptHit(hit=Hit(**hit), level=raw["level"]))
    return out, judged


__all__ = ["KeptHit", "read_day_hits", "write_day_hits"]
