"""What every CLI command shares: the --config and --state-dir options, opening a Context,
turning the agent's errors into exit codes (ConfigError 2, other AiopsError 1), and one output
convention: ``--format`` with the formats a command supports, ``--output FILE`` (else standard
output). The spellings before it (``--json``, ``--out``, and ``--shard`` on commands where a
shard means nothing) are still accepted, hidden, for one release."""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
from collections.abc import Callable, Iterator
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
# Where a shard means nothing (the store is shared): accepted, hidden, for one release.
hidden_shard_option = click.option("--shard", envvar="AIOPS_SHARD", default=None, hidden=True)


def format_option(*formats: str, json_alias: bool = False) -> Callable[[F], F]:
    """``--format`` among ``formats`` (the first is the default), passed as ``fmt``; with
    ``json_alias`` the old ``--json`` flag still means ``--format json`` (hidden)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, fmt: str, legacy_json: bool = False, **kwargs: Any) -> Any:
            return fn(*args, fmt="json" if legacy_json else fmt, **kwargs)

        wrapped = click.option("--format", "fmt", type=click.Choice(formats), default=formats[0], show_default=True,
                               help="How to print the result.")(wrapper)
        if json_alias:
            wrapped = click.option("--json", "legacy_json", is_flag=True, hidden=True)(wrapped)
        return wrapped  # type: ignore[return-value]

    return decorate


def output_option(fn: F) -> F:
    """``-o/--output FILE``: what the command prints goes to FILE instead of standard output,
    written whole or not at all (a failed command leaves an existing FILE as it was); the old
    ``--out`` is a hidden alias."""

    @click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Write to FILE instead of standard output.")
    @click.option("--out", "legacy_out", type=click.Path(dir_okay=False, path_type=Path), default=None, hidden=True)
    @functools.wraps(fn)
    def wrapper(*args: Any, output: Path | None, legacy_out: Path | None, **kwargs: Any) -> Any:
        target = output or legacy_out
        if target is None:
            return fn(*args, **kwargs)
        with _written(target) as stream, contextlib.redirect_stdout(stream):
            result = fn(*args, **kwargs)
        click.echo(f"wrote {target} ({target.stat().st_size:,} bytes)", err=True)
        return result

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _written(path: Path) -> Iterator[Any]:
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as stream:
            yield stream
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


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


def with_config(fn: F | None = None, *, shard: bool = False) -> Any:
    """Adds --config/--state-dir and passes ``config`` (AgentConfig) and ``state_dir`` (Path);
    ``--shard`` is shown only where ``shard`` says a shard means something."""
    if fn is None:
        return functools.partial(with_config, shard=shard)

    @config_option
    @state_dir_option
    @(shard_option if shard else hidden_shard_option)
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
