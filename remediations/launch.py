"""``launch.py CONFIG [ARG...]``: become ``ansible-playbook ARG...``, tracked and with a scrubbed environment.

ansible-runner starts ``ansible-playbook`` by name, looked up on the PATH of the environment it
was given; the agent puts a run's own ``bin/ansible-playbook`` first on that PATH, a script that
execs this. Here, before anything of the run exists:

- the pid goes where the run's tracking wants it (``join``: a cgroup's ``cgroup.procs`` or the
  subreaper's root pid file), so all the playbook starts is tracked;
- the names in ``drop`` whose value is empty leave the environment: ansible-runner seeds the
  environment with the agent's whole one, and the agent gave every name of its own it does not
  pass on purpose the value "" (a name ansible-runner sets for itself has its value again);
- PATH is the one the playbook is meant to see (without the run's ``bin``);

then it execs ``ansible-playbook`` (same pid), found on that PATH. It exits 125 when the pid
cannot be written, 127 when ``ansible-playbook`` cannot be started.

Standard library only: it runs under whatever python3 the agent names, outside the package.
"""

from __future__ import annotations

import json
import os
import sys


def environment(current: dict[str, str], *, drop: list[str], path: str) -> dict[str, str]:
    dropped = set(drop)
    env = {name: value for name, value in current.items() if not (name in dropped and value == "")}
    env["PATH"] = path
    return env


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as f:
        config = json.load(f)
    try:
        with open(config["join"], "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as exc:
        print(f"aiops launch: cannot write the run's pid to {config['join']}: {exc}", file=sys.stderr)
        return 125
    env = environment(dict(os.environ), drop=config["drop"], path=config["path"])
    try:
        os.execvpe("ansible-playbook", ["ansible-playbook", *argv[2:]], env)
    except OSError as exc:
        print(f"aiops launch: cannot start ansible-playbook: {exc}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
