"""Label values are untrusted: path traversal, Jinja injection and unknown hosts are refused, and
what does reach Ansible is never templated."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import RemediationError
from agent.flow.runs import RunStatus
from remediations.rules import resolve_playbook
from tests.remediations.conftest import T0, audit, open_incident, run_cycle, signal

INJECTION = "{{ lookup('pipe','id') }}"


def rule_yaml(work: Path, *, playbook: str = "touch_direct.yml", pattern: str | None = None,
              targets: str = "{hosts: [localhost]}") -> str:
    loose = f"label_pattern: '{pattern}'" if pattern else ""
    return f"""
    {loose}
    limits: {{cooldown: 0s}}
    rules:
      - name: fix
        match: {{labels: {{service: api}}}}
        playbook: {playbook}
        mode: auto
        targets: {targets}
        vars_from_labels: {{label_value: note}}
        vars: {{dest: {work / 'out.txt'}, runs_log: {work / 'runs.log'}}}
    """


def refusals(ctx) -> list[str]:
    return [e.details["reason"] for e in audit(ctx, "remediation.refused")]


@pytest.mark.parametrize("name", ["../outside.yml", "/etc/hostname", "sub/../../outside.yml", "link.yml"])
def test_playbook_paths_must_stay_inside_the_playbook_dir(pbdir, tmp_path, name):
    (tmp_path / "outside.yml").write_text("- hosts: all\n")
    (pbdir / "link.yml").symlink_to(tmp_path / "outside.yml")
    with pytest.raises(RemediationError) as exc:
        resolve_playbook(pbdir, name, rule="fix")
    resolved = Path("/etc/hostname") if name.startswith("/") else tmp_path / "outside.yml"
    assert str(exc.value) == (f"remediation rule fix: expected a playbook inside {pbdir}, "
                              f"found {name!r} resolving to {resolved}")


def test_a_rule_pointing_outside_the_playbook_dir_is_refused_and_nothing_runs(make_ctx, work, tmp_path, pbdir):
    (tmp_path / "outside.yml").write_text("- hosts: all\n")
    ctx = make_ctx(rule_yaml(work, playbook="../outside.yml"))
    open_incident(ctx, {"service": "api", "note": "x"})

    assert run_cycle(ctx, T0) == []

    assert refusals(ctx) == [f"expected a playbook inside {pbdir}, found '../outside.yml' resolving to "
                             f"{tmp_path / 'outside.yml'}"]
    assert ctx.store.list_runs() == []


def test_jinja_in_a_label_is_refused_by_the_label_pattern(make_ctx, work):
    ctx = make_ctx(rule_yaml(work))
    open_incident(ctx, {"service": "api", "note": INJECTION})

    assert run_cycle(ctx, T0) == []

    pattern = ctx.config.remediation.label_pattern
    assert refusals(ctx) == [f"label note: expected a value matching {pattern}, found {INJECTION!r}"]
    assert not (work / "out.txt").exists()


@pytest.mark.parametrize("value", ["a/../../etc/passwd", "logs/..", "x/../y", "a/./../b", "data/..%2f/x"])
def test_path_traversal_in_a_label_is_refused_by_the_default_pattern(make_ctx, work, value):
    ctx = make_ctx(rule_yaml(work))
    open_incident(ctx, {"service": "api", "note": value})

    assert run_cycle(ctx, T0) == []

    pattern = ctx.config.remediation.label_pattern
    assert refusals(ctx) == [f"label note: expected a value matching {pattern}, found {value!r}"]
    assert ctx.store.list_runs() == [] and not (work / "out.txt").exists()


def test_a_path_without_traversal_reaches_the_playbook(make_ctx, work):
    ctx = make_ctx(rule_yaml(work))
    open_incident(ctx, {"service": "api", "note": "var/log/app-1..2.log"})

    (run,) = run_cycle(ctx, T0)

    assert run.extravars["label_value"] == "var/log/app-1..2.log"
    assert (work / "out.txt").read_text() == "var/log/app-1..2.log"


def test_jinja_that_passes_a_loose_pattern_reaches_ansible_unsafe_and_is_never_evaluated(make_ctx, work):
    ctx = make_ctx(rule_yaml(work, pattern=".*"))
    incident = open_incident(ctx, {"service": "api", "note": INJECTION})

    (run,) = run_cycle(ctx, T0)

    assert run.status is RunStatus.VERIFYING
    assert (work / "out.txt").read_text() == INJECTION  # not "uid=0(root) ..."
    assert run.extravars["label_value"] == INJECTION
    assert f"label_value: !unsafe '{INJECTION.replace(chr(39), chr(39) * 2)}'" in \
        (Path(run.artifact_dir) / "aiops-vars.yml").read_text()
    assert "uid=" not in run.output
    assert ctx.store.get_incident(incident.id).status == "remediating"


@pytest.mark.parametrize("host", ["h1,all", "localhost; touch /tmp/pwned", "../../etc"])
def test_targets_from_labels_must_be_inventory_hosts(make_ctx, work, host):
    ctx = make_ctx(rule_yaml(work, targets="{label: host}"))
    open_incident(ctx, {"service": "api", "note": "x", "host": host}, signals=[signal(host=host)])

    assert run_cycle(ctx, T0) == []

    assert refusals(ctx) == [f"expected targets from the inventory, found unknown host {host!r}"]


def test_a_missing_inventory_is_a_refusal_not_a_crash(make_ctx, work, tmp_path):
    ctx = make_ctx(rule_yaml(work).replace("limits:", f"inventory: {tmp_path / 'nope.ini'}\n    limits:"))
    open_incident(ctx, {"service": "api", "note": "x"})

    assert run_cycle(ctx, T0) == []

    assert refusals(ctx) == [f"expected an inventory at {tmp_path / 'nope.ini'}, found no such file or directory"]
