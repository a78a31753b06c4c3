"""``aiops audit …`` and ``aiops report …``."""

from __future__ import annotations

import click

from agent.clicommon import AiopsGroup, with_context
from agent.context import Context


@click.group(cls=AiopsGroup)
def audit() -> None:
    """The append-only, hash-chained audit log."""


@audit.command("verify")
@with_context
def audit_verify(ctx: Context) -> None:
    """Check the audit chain: exit 0 when intact, else print the first broken entry and exit 1.

    Example: aiops audit verify --config /etc/aiops-agent/agent.yaml
    """
    broken = ctx.store.verify_audit()
    total = ctx.store.query_one("SELECT count(*) FROM audit")[0]
    if broken is None:
        click.echo(f"audit chain intact: {total} entries")
        return
    click.echo(f"audit chain broken at entry {broken.id}: {broken.reason}", err=True)
    raise SystemExit(1)


commands: list[click.Command] = [audit]
