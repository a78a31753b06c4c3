"""Errors of aiops-agent. A constructor takes facts and builds the message from them.

::

    AiopsError                      anything the agent reports as a failure of its own
     ├── ConfigError                a configuration file is invalid (CLI exit code 2)
     ├── SourceError                a metric source failed (down, bad answer, timeout)
     │    └── FetchError            one target or query could not be read (agent.sources.base)
     ├── StoreError                 the SQLite store cannot be used as asked
     │    ├── SchemaTooNewError     the store was written by a newer agent
     │    ├── StoreDamagedError     the store's file is damaged (a garbage page)
     │    ├── StoreFullError        the store's disk is full (or will not take writes)
     │    └── StoreUnavailableError  the store cannot be reached or does not answer now
     ├── UnknownIncidentError       no incident with that id (agent.store.incidents)
     ├── UnknownSilenceError        no silence with that id (agent.store.silences)
     ├── RemediationError           a remediation cannot be run as configured
     │    └── PlaybookError         a playbook breaks the convention (remediations.playbooks)
     ├── TransitionError            an incident or run cannot move to the asked state
     │    └── LeaseLostError        this agent no longer holds the lease the step needs
     ├── BaselineError              a drift baseline cannot be recorded (agent.detection.drift)
     ├── DeliveryError              a channel did not accept a notification (agent.notify.channels)
     ├── UnknownChannelError        no such channel in notify.channels (agent.cli.notify)
     ├── CorpusError                a backtest input cannot be used (agent.backtest.corpus)
     ├── ReplayError                a replay cannot run, or read nothing (agent.replay.run)
     ├── KnownOutagesError          a known-outages file cannot be used (agent.replay.known)
     ├── InstallError               the systemd unit cannot be installed (agent.service)
     ├── ToolMissingError           the demo needs a binary that is not installed (demo.prometheus)
     ├── RolloutError               a model rollout cannot start or move as asked (agent.rollouts.engine)
     ├── MeasureError               a rollout analysis measurement cannot be taken (agent.rollouts.analysis)
     └── TimedOut                   the demo waited too long for something (demo.run)
    DetectorError                   a detector cannot use its input; a ValueError (detectors.errors)
     └── NotFittedError             scored before it was fitted (detectors.errors)

A class defined outside this module names its module in parentheses;
``tests/agent/test_errors.py`` checks this drawing against the classes themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from detectors.errors import DetectorError, NotFittedError

__all__ = [
    "AiopsError",
    "ConfigError",
    "ConfigProblem",
    "DetectorError",
    "LeaseLostError",
    "NotFittedError",
    "RemediationError",
    "SchemaTooNewError",
    "SourceError",
    "StoreDamagedError",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "TransitionError",
]


class AiopsError(Exception):
    """Base of the agent's own errors. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigProblem:
    """One problem in a configuration file: where it is, what was expected, what was found."""

    __slots__ = ("path", "key", "message")

    def __init__(self, path: str, key: str, message: str) -> None:
        self.path = path
        self.key = key
        self.message = message

    def __str__(self) -> str:
        where = f"{self.path}: {self.key}" if self.key else self.path
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({str(self)!r})"


class ConfigError(AiopsError):
    """A configuration file is invalid; carries every problem found, one line each."""

    exit_code = 2

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, path: str, key: str, message: str) -> "ConfigError":
        return cls([ConfigProblem(path, key, message)])


class SourceError(AiopsError):
    """A metric source failed: ``source`` names it, ``target`` the URL or file."""

    def __init__(self, source: str, target: str, problem: str) -> None:
        self.source = source
        self.target = target
        self.problem = problem
        super().__init__(f"source {source} ({target}): {problem}")


class StoreError(AiopsError):
    """The store cannot be used as asked."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"store {path}: {problem}")


class SchemaTooNewError(StoreError):
    """The store file was migrated by a newer agent than this one."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            f"schema version {found} is newer than this agent supports ({supported}); "
            "upgrade aiops-agent or point --state-dir elsewhere",
        )


class StoreDamagedError(StoreError):
    """The store's file is damaged: SQLite found a page that is not what it should be."""

    def __init__(self, path: str, detail: str) -> None:
        self.detail = detail
        super().__init__(path, f"the file is damaged ({detail}): stop the agent, then restore the file from a "
                               f"backup, or keep what is readable: sqlite3 {path} .recover | sqlite3 recovered.db")


class StoreFullError(StoreError):
    """Writing to the store failed for lack of space (or a disk that refuses writes)."""

    def __init__(self, path: str, detail: str) -> None:
        self.detail = detail
        super().__init__(path, f"cannot write ({detail}): is its disk full? Free space, then start the agent again")


class StoreUnavailableError(StoreError):
    """The store cannot be reached, or does not answer, now (a server down, restarting or hung):
    what was asked did not happen, and may be asked again."""

    def __init__(self, path: str, detail: str) -> None:
        self.detail = detail
        super().__init__(path, f"cannot be reached now ({detail})")


class RemediationError(AiopsError):
    """A remediation cannot be run as configured."""

    def __init__(self, rule: str, problem: str) -> None:
        self.rule = rule
        self.problem = problem
        super().__init__(f"remediation rule {rule}: {problem}")


class TransitionError(AiopsError):
    """An incident or run cannot move from its state to the asked one."""

    def __init__(self, subject: str, current: str, wanted: str, why: str = "") -> None:
        self.subject = subject
        self.current = current
        self.wanted = wanted
        tail = f": {why}" if why else ""
        super().__init__(f"{subject} is {current}, cannot move to {wanted}{tail}")


class LeaseLostError(TransitionError):
    """A step that needs a lease (the leader's, to start a playbook run) by an agent that lost it:
    another agent may act now, so this one must not."""

    def __init__(self, subject: str, current: str, wanted: str, lease: str, holder: str) -> None:
        self.lease = lease
        super().__init__(subject, current, wanted, f"{holder} no longer holds the {lease} lease")
