"""The playbook header convention, and ``lint`` that enforces it.

A playbook starts with comment lines ``# key: value`` (see ``playbooks/README.md``)::

    # fixes: a service that stopped answering
    # vars: service_name (required) the unit to restart
    # idempotent: yes
    # check_mode_safe: yes

The agent runs a ``--check`` pass before the real one only when ``check_mode_safe`` is yes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent.errors import RemediationError

REQUIRED = ("fixes", "vars", "idempotent", "check_mode_safe")
_LINE = re.compile(r"^#\s*([a-z_]+)\s*:\s*(.*?)\s*$")
_BOOL = {"yes": True, "no": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    fixes: str
    vars: str
    idempotent: bool
    check_mode_safe: bool


class PlaybookError(RemediationError):
    """A playbook breaks the convention; ``problem`` says how."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__("-", problem)
        self.args = (f"{path}: {problem}",)

    def __str__(self) -> str:
        return str(self.args[0])


def read_header(path: Path) -> Header:
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        match = _LINE.match(line)
        if match and match.group(1) in REQUIRED:
            found[match.group(1)] = match.group(2)
    missing = [key for key in REQUIRED if not found.get(key)]
    if missing:
        raise PlaybookError(path, f"expected a header with {', '.join(REQUIRED)}, found none for {', '.join(missing)}")
    flags: dict[str, bool] = {}
    for key in ("idempotent", "check_mode_safe"):
        word = found[key].split()[0].lower()  # "yes (read-only)": a reason may follow the answer
        if word not in _BOOL:
            raise PlaybookError(path, f"header {key}: expected yes or no, found {found[key]!r}")
        flags[key] = _BOOL[word]
    return Header(fixes=found["fixes"], vars=found["vars"], **flags)


def playbooks(playbook_dir: Path) -> list[Path]:
    return sorted(p for p in playbook_dir.glob("*.y*ml") if p.suffix in (".yml", ".yaml"))


def lint(playbook_dir: Path, *, syntax: bool = True) -> list[str]:
    """One line per problem: missing or bad headers, YAML that is not a list of plays, and what
    ``ansible-playbook --syntax-check`` says. Empty when every playbook is fine."""
    problems: list[str] = []
    good: list[Path] = []
    for path in playbooks(playbook_dir):
        try:
            read_header(path)
            plays = yaml.safe_load(path.read_text(encoding="utf-8"))
        except PlaybookError as exc:
            problems.append(str(exc))
            continue
        except yaml.YAMLError as exc:
            problems.append(f"{path}: expected valid YAML, found {exc}")
            continue
        if not isinstance(plays, list) or not all(isinstance(p, dict) and "hosts" in p for p in plays):
            problems.append(f"{path}: expected a list of plays, each with hosts, found something else")
            continue
        good.append(path)
    if syntax and good:
        problems += _syntax_check(good)
    return problems


def _syntax_check(paths: list[Path]) -> list[str]:
    binary = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run([str(binary), "--syntax-check", "-i", "localhost,", *map(str, paths)],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode == 0:
        return []
    text = (proc.stderr or proc.stdout).strip().splitlines()
    return [f"ansible-playbook --syntax-check: {line}" for line in text if line.strip()][:20]
