"""Which rule applies to an incident, and what a run of it would act on.

Everything that comes from an incident's labels is untrusted: a label value becomes a target only
when it names a host of the configured inventory, and a variable only when it matches the
configured pattern; it is never joined into a path, a command line or a template.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from agent.config.remediation import RemediationConfig, Rule
from agent.errors import RemediationError
from agent.flow.incidents import STORM_LABEL


def matches(rule: Rule, incident: Any) -> bool:
    """Every key the rule's ``match`` gives holds for the incident (or one of the signals of its
    current outage: a reopened incident is not rolled back again for what fired before). A storm
    incident matches no rule: its signals share nothing but the cycle they came in."""
    if incident.labels.get(STORM_LABEL) == "true":
        return False
    m = rule.match
    signals = incident.current_signals
    if m.severity and str(incident.severity) not in m.severity:
        return False
    if m.root_cause is not None and incident.root_cause != m.root_cause:
        return False
    if m.detector is not None and not any(s.detector == m.detector for s in signals):
        return False
    if m.metric is not None and not any(s.metric == m.metric for s in signals):
        return False
    for name, wanted in m.labels.items():
        if wanted not in label_values(incident, name):
            return False
    for name, pattern in m.labels_regex.items():
        if not any(re.fullmatch(pattern, value) for value in label_values(incident, name)):
            return False
    return True


def label_values(incident: Any, name: str) -> list[str]:
    """The values of label ``name``: the incident's own first, then its signals', distinct."""
    values: list[str] = []
    own = incident.labels.get(name)
    if own is not None:
        values.append(str(own))
    for signal in incident.current_signals:
        value = signal.labels.get(name)
        if value is not None and str(value) not in values:
            values.append(str(value))
    return values


def targets(rule: Rule, incident: Any, inventory_hosts: frozenset[str]) -> list[str]:
    """Inventory hosts the run acts on; refuses a host the inventory does not know."""
    if rule.targets.label is None:
        hosts = list(rule.targets.hosts)
    else:
        hosts = label_values(incident, rule.targets.label)
        if not hosts:
            raise RemediationError(rule.name, f"expected the incident to carry label {rule.targets.label!r} "
                                              "naming its hosts, found none")
    unknown = [h for h in hosts if h not in inventory_hosts]
    if unknown:
        raise RemediationError(rule.name, f"expected targets from the inventory, found unknown host {unknown[0]!r}")
    return hosts


def label_vars(rule: Rule, incident: Any, pattern: str) -> dict[str, str]:
    """Extra variables from incident labels, each checked against ``pattern``."""
    out: dict[str, str] = {}
    for var, label in rule.vars_from_labels.items():
        values = label_values(incident, label)
        if not values:
            raise RemediationError(rule.name, f"expected the incident to carry label {label!r} for variable "
                                              f"{var}, found none")
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
