"""Which rule applies to an incident, and what a run of it would act on.

Everything that comes from an incident's labels is untrusted: a label value becomes a target only
when it names a host of the configured inventory, and a variable only when it matches the
configured pattern; it is never joined into a path, a command line or a template. Both come
only from the signals that matched the rule, never from another signal of the same incident.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from agent.config.remediation import RemediationConfig, Rule
from agent.errors import RemediationError
from agent.flow.incidents import STORM_LABEL


def matches(rule: Rule, incident: Any) -> bool:
    """The incident's severity and root cause are the rule's, and at least one signal of its
    current outage holds every signal key of ``match`` (a reopened incident is not rolled back
    again for what fired before). A storm incident matches no rule: its signals share nothing but
    the cycle they came in."""
    if incident.labels.get(STORM_LABEL) == "true":
        return False
    m = rule.match
    if m.severity and str(incident.severity) not in m.severity:
        return False
    if m.root_cause is not None and incident.root_cause != m.root_cause:
        return False
    return bool(matching_labels(rule, incident))


def matching_labels(rule: Rule, incident: Any) -> tuple[Mapping[str, str], ...]:
    """The labels of each signal of the current outage that holds every signal key of the rule's
    ``match`` at once (detector, metric, labels, labels_regex). A run takes its variables and
    targets from these alone: the incident's own labels are those of whichever signal came first,
    and one alert correlated into the incident must not choose what another's rule acts on. An
    incident without any signal (a rollout's, one opened by hand) is judged by its own labels."""
    if not incident.signals:
        facts: list[tuple[str | None, str | None, Mapping[str, str]]] = [(None, None, incident.labels)]
    else:
        facts = [(s.detector, s.metric, s.labels) for s in incident.current_signals]
    m = rule.match
    return tuple(labels for detector, metric, labels in facts
                 if (m.detector is None or detector == m.detector)
                 and (m.metric is None or metric == m.metric)
                 and all(labels.get(name) == wanted for name, wanted in m.labels.items())
                 and all(labels.get(name) is not None and re.fullmatch(pattern, str(labels[name]))
                         for name, pattern in m.labels_regex.items()))


def label_values(matched: Sequence[Mapping[str, str]], name: str) -> list[str]:
    """The distinct values of label ``name`` in ``matched``, in their order."""
    return list(dict.fromkeys(str(labels[name]) for labels in matched if labels.get(name) is not None))


def targets(rule: Rule, incident: Any, inventory_hosts: frozenset[str]) -> list[str]:
    """Inventory hosts the run acts on (named by the matching signals when the rule takes them
    from a label); refuses a host the inventory does not know."""
    if rule.targets.label is None:
        hosts = list(rule.targets.hosts)
    else:
        hosts = label_values(matching_labels(rule, incident), rule.targets.label)
        if not hosts:
            raise RemediationError(rule.name, f"expected the signals matching the rule to carry label "
                                              f"{rule.targets.label!r} naming its hosts, found none")
    unknown = [h for h in hosts if h not in inventory_hosts]
    if unknown:
        raise RemediationError(rule.name, f"expected targets from the inventory, found unknown host {unknown[0]!r}")
    return hosts


def label_vars(rule: Rule, incident: Any, pattern: str) -> dict[str, str]:
    """Extra variables from the labels of the signals that matched the rule, each checked against
    ``pattern``. Matching signals that disagree on a variable's label are refused: choosing one
    would let whichever signal fired choose what the playbook acts on."""
    matched = matching_labels(rule, incident)
    out: dict[str, str] = {}
    for var, label in rule.vars_from_labels.items():
        values = label_values(matched, label)
        if not values:
            raise RemediationError(rule.name, f"expected the signals matching the rule to carry label {label!r} "
                                              f"for variable {var}, found none")
        if len(values) > 1:
            shown = ", ".join(repr(v[:80]) for v in values[:5])
            raise RemediationError(rule.name, f"label {label} for variable {var}: expected one value among the "
                                              f"signals matching the rule, found {len(values)} ({shown}); "
                                              "not choosing one")
        value = values[0]
        if not re.fullmatch(pattern, value):
            raise RemediationError(rule.name, f"label {label}: expected a value matching {pattern}, "
                                              f"found {value[:80]!r}")
        out[var] = value
    return out


def resolve_playbook(playbook_dir: Path, name: str, *, rule: str = "-") -> Path:
    """The playbook's real path; refuses one outside ``playbook_dir`` (``..``, absolute, symlinks)."""
    base = playbook_dir.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise RemediationError(rule, f"expected a playbook inside {base}, found {name!r} resolving to {path}")
    if not path.is_file():
        raise RemediationError(rule, f"expected playbook {name!r} in {base}, found no such file")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inventory_hosts(config: RemediationConfig) -> frozenset[str]:
    if config.inventory is None:
        return frozenset({"localhost"})
    path = config.inventory.resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise RemediationError("-", f"expected an inventory at {path}, found {exc.strerror.lower()}") from exc
    return _parse_inventory(str(path), mtime)


@lru_cache(maxsize=8)
def _parse_inventory(path: str, _mtime_ns: int) -> frozenset[str]:
    # ansible's own parser, so INI, YAML and directories mean here what they mean to ansible.
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=[path])
    return frozenset(host.name for host in manager.get_hosts())


SECRET_WORDS = ("token", "password", "secret", "key", "credential")


def is_secret(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


def redact(values: Mapping[str, Any]) -> dict[str, Any]:
    """Variables as recorded: any whose name suggests a secret becomes ``***``."""
    return {k: ("***" if is_secret(k) else v) for k, v in values.items()}


def scrub(text: str, values: Mapping[str, Any]) -> str:
    """``text`` (a run's output) with the values of secret variables replaced by ``***``."""
    for key, value in values.items():
        if is_secret(key) and isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, "***")
    return text
