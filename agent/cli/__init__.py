"""``aiops``, the command line: the group and the agent's own commands in ``main``, each stage's
commands in a module named after the stage, what they share in ``common``."""

from agent.cli.main import cli, main

__all__ = ["cli", "main"]
