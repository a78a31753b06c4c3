"""``aiops_detach COMMAND [ARG...]``: start COMMAND as a service that outlives the playbook run.

A remediation run's processes are killed when the run ends, times out, is cancelled, or is found
after the agent died. A service a playbook restarts on purpose must survive that, so the playbook
starts it through this wrapper (the agent passes its argv as the variable ``aiops_detach``):

    ansible.builtin.command:
      argv: "{{ aiops_detach + ['/usr/sbin/mysvc', '--pidfile', pidfile] }}"

COMMAND runs in a session of its own, in the background, with stdin, stdout and stderr on
/dev/null, outside the run's tracking (``AIOPS_DETACH`` says where: a cgroup's ``cgroup.procs``, or
the run's record of detached processes). This returns once COMMAND has been exec'd (exit 0), or
with 127 when it could not be, 125 when it could not be detached. Without ``AIOPS_DETACH`` (a
playbook run by hand) it only starts COMMAND in the background.

Standard library only: it runs under whatever python3 the agent names, outside the package.
"""

from __future__ import annotations

import os
import sys

ENV = "AIOPS_DETACH"


def _register(where: str) -> None:
    kind, _, path = where.partition(":")
    pid = os.getpid()
    if kind == "cgroup":
        with open(path, "w") as f:
            f.write(f"{pid}\n")
    elif kind == "file":
        with open(f"/proc/{pid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        with open(path, "a") as f:
            f.write(f"{pid} {start}\n")
    else:
        raise OSError(f"{ENV}: expected cgroup:PATH or file:PATH, found {where!r}")


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: aiops_detach COMMAND [ARG...]\n")
        return 2
    where = os.environ.pop(ENV, "")
    read, write = os.pipe()
    os.set_inheritable(write, False)  # closed by a successful exec: the parent reads EOF
    pid = os.fork()
    if pid:
        os.close(write)
        report = os.read(read, 4096)  # not waited for: the service is adopted when this exits
        if report:
            code, _, message = report.decode(errors="replace").partition(" ")
            sys.stderr.write(f"aiops_detach: {message}\n")
            return int(code)
        return 0
    os.close(read)
    try:
        os.setsid()
        if where:
            _register(where)
    except OSError as exc:
        os.write(write, f"125 cannot detach: {exc}".encode())
        os._exit(125)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(write, f"127 cannot run {argv[0]}: {exc}".encode())
    os._exit(127)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
