"""``aiops service install``: the unit, a config skeleton and the state dir, with safe modes."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from agent.errors import AiopsError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
UNIT_NAME = "aiops-agent.service"


class InstallError(AiopsError):
    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"service install: {what}: {problem}")


def _aiops_executable(exec_path: str | None) -> str:
    if exec_path:
        return exec_path
    found = shutil.which("aiops")
    if found:
        return str(Path(found).resolve())
    return str(Path(sys.executable).with_name("aiops"))


def install(prefix: Path, *, exec_path: str | None = None) -> Iterator[str]:
    """Yields one line per thing written or kept. Existing config is never overwritten."""
    unit_src = CONFIG_DIR / UNIT_NAME
    example = CONFIG_DIR / "agent.example.yaml"
    for path in (unit_src, example):
        if not path.is_file():
            raise InstallError(str(path), "not found: install from a checkout of aiops-agent")
    prefix = Path(prefix)
    executable = _aiops_executable(exec_path)
    if not executable.startswith("/"):
        raise InstallError("--exec-path", f"expected an absolute path, found {executable!r}")

    unit_dir = prefix / "etc/systemd/system"
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit = unit_src.read_text()
    unit = re.sub(r"^ExecStart=\S+", f"ExecStart={executable}", unit, count=1, flags=re.M)
    unit_path = unit_dir / UNIT_NAME
    unit_path.write_text(unit)
    os.chmod(unit_path, 0o644)
    yield f"wrote {unit_path}"

    etc = prefix / "etc/aiops-agent"
    etc.mkdir(parents=True, exist_ok=True, mode=0o750)
    os.chmod(etc, 0o750)
    config_path = etc / "agent.yaml"
    if config_path.exists():
        yield f"kept {config_path} (exists)"
    else:
        text = example.read_text()
        text = re.sub(r"^(\s*state_dir:).*$", r"\1 /var/lib/aiops-agent", text, count=1, flags=re.M)
        text = re.sub(r"^(\s*playbook_dir:).*$", rf"\1 {(CONFIG_DIR.parent / 'playbooks')}", text, count=1, flags=re.M)
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        yield f"wrote {config_path} (mode 0600: it may hold secrets)"
    env_path = etc / "env"
    if not env_path.exists():
        fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Secrets for aiops-agent, read by systemd (mode 0600). Example:\n# AIOPS_API_TOKEN=change-me\n")
        yield f"wrote {env_path} (mode 0600)"

    state = prefix / "var/lib/aiops-agent"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state, 0o700)
    yield f"state dir {state} (mode 0700)"
    if prefix == Path("/"):
        yield "next: systemctl daemon-reload && systemctl enable --now aiops-agent"
