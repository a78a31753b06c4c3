"""``python -m demo inject KIND``: break the running demo stack on purpose."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.common import AiopsGroup
from demo.stack import FAULT_KINDS

DEFAULT_ROOT = Path(".demo")


@click.group(cls=AiopsGroup)
def demo() -> None:
    """The demo stack (`make demo`, i.e. `python -m demo`, runs the whole story)."""


@demo.command("inject")
@click.argument("kind", type=click.Choice(FAULT_KINDS))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_ROOT, show_default=True,
              help="The demo stack's directory.")
def demo_inject(kind: str, root: Path) -> None:
    """Inject a fault into the running demo stack.

    Example: python -m demo inject latency --root .demo
    """
    from agent.store import Store
    from demo.faults import inject

    store_path = root / "state" / "aiops.db"
    store = Store(store_path) if store_path.exists() else None
    try:
        click.echo(inject(root, kind, store=store))
    finally:
        if store is not None:
            store.close()
