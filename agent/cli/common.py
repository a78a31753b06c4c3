"""What every CLI command shares: the --config and --state-dir options, opening a Context,
and turning the agent's errors into exit codes (ConfigError 2, other AiopsError 1)."""

from __future__ import annotations

import functools
import getpass
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from agent.clock import utcnow
from agent.config import AgentConfig, load_config, with_shard
from agent.errors import AiopsError

DEFAULT_CONFIG = Path("/etc/aiops-agent/agent.yaml")

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """An AiopsError on its way out of the CLI, with the error's own exit code."""

    def __init__(self, error: AiopsError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


class AiopsGroup(click.Group):
    """A click group whose commands' AiopsErrors become clean messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AiopsError as exc:
            raise CliError(exc) from exc


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="AIOPS_CONFIG",
    default=None, help=f"Config file (env AIOPS_CONFIG; default {DEFAULT_CONFIG}).")
state_dir_option = click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="AIOPS_STATE_DIR", default=None,
    help="Where the store and artifacts live (env AIOPS_STATE_DIR; overrides agent.state_dir).")

shard_option = click.option(
    "--shard", envvar="AIOPS_SHARD", default=None, metavar="I/N",
    help="Handle only shard I of N of the series (env AIOPS_SHARD; overrides agent.shard).")


class Settings:
    """What the group's own options said; a command's options override them. ``clock`` is
    "now" for every decision a command makes (approval expiry, ``--since``, report periods): the
    wall clock unless the caller passes another (``CliRunner().invoke(cli, obj=Settings(clock=…))``)."""

    def __init__(self, config_path: Path | None = None, state_dir: Path | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.config_path = config_path
        self.state_dir = state_dir
        self.clock = clock


def current_clock() -> Callable[[], datetime]:
    """The clock of the command being run (the wall clock outside a command)."""
    click_ctx = click.get_current_context(silent=True)
    obj = click_ctx.find_object(Settings) if click_ctx else None
    return obj.clock if obj else utcnow


def resolve(config_path: Path | None, state_dir: Path | None) -> tuple[Path, Path | None]:
    obj = click.get_current_context().find_object(Settings)
    config_path = config_path or (obj.config_path if obj else None) or DEFAULT_CONFIG
    state_dir = state_dir or (obj.state_dir if obj else None)
    return config_path, state_dir


def with_config(fn: F) -> F:
    """Adds --config/--state-dir and passes ``config`` (AgentConfig) and ``state_dir`` (Path)."""

    @config_option
    @state_dir_option
    @shard_option
    @functools.wraps(fn)
    def wrapper(*args: Any, config_path: Path | None, state_dir: Path | None, shard: str | None, **kwargs: Any) -> Any:
        path, override = resolve(config_path, state_dir)
        config = with_shard(load_config(path), shard)
        return fn(*args, config=config, state_dir=Path(override or config.agent.state_dir), **kwargs)

    return wrapper  # type: ignore[return-value]


def with_context(fn: F) -> F:
    """Adds --config/--state-dir and passes an open ``Context`` as ``ctx``."""

    @with_config
    @functools.wraps(fn)
    def wrapper(*args: Any, config: AgentConfig, state_dir: Path, **kwargs: Any) -> Any:
        from agent import log
        from agent.context import Context

        log.setup(os.environ.get("AIOPS_LOG_LEVEL", "warning"), secrets=config.secrets())
        ctx = Context.create(config, state_dir, clock=current_clock())
        try:
            return fn(*args, ctx=ctx, **kwargs)
        finally:
            ctx.store.close()

    return wrapper  # type: ignore[return-value]


class When(click.ParamType):
    """A point in time, read as every command reads one (``agent.report.period.parse_since``):
    ``7d`` back from now (also ``now-7d``), ``now``, or an ISO date or time (UTC unless it says)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        from agent.report.period import parse_since

        if isinstance(value, datetime):
            return value
        try:
            return parse_since(str(value).strip(), now=current_clock()())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def parse_duration_option(_ctx: click.Context, param: click.Parameter, value: str) -> float:
    """A click callback: ``30s``, ``5m``, ``1h``, ``7d`` -> seconds (> 0), or a usage error."""
    from agent.config.types import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None
    if seconds <= 0:
        raise click.BadParameter(f"expected a duration > 0, found {value!r}", param=param)
    return seconds


def cli_actor() -> str:
    """Who is acting from the CLI, for the audit log: ``cli:<user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}"
