"""CLI commands of this stage; ``agent.cli`` adds every command listed in ``commands``."""

from __future__ import annotations

import click

commands: list[click.Command] = []
