"""``aiops``: the command line. Each command parses, loads the config, calls one function and
prints. Errors exit 2 for a bad config, 1 for any other failure.

This module holds the group and the commands of the agent as a whole (config, once, run, service,
store); each stage's commands live in a module of this package named after the stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent import __version__
from agent.cli.common import (
    AiopsGroup,
    Settings,
    config_option,
    format_option,
    output_option,
    shard_option,
    state_dir_option,
    with_config,
)
from agent.config import AgentConfig, load_config
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.store import Store


@click.group(cls=AiopsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@state_dir_option
@click.version_option(__version__, prog_name="aiops")
@click.pass_context
def cli(click_ctx: click.Context, config_path: Path | None, state_dir: Path | None) -> None:
    """aiops-agent: detect anomalies in infrastructure and ML-model metrics, correlate them into
    incidents, remediate with Ansible playbooks safely, and track MTTR.

    Example: aiops once --config config/agent.example.yaml --state-dir /tmp/aiops
    """
    given = click_ctx.obj if isinstance(click_ctx.obj, Settings) else Settings()
    click_ctx.obj = Settings(config_path, state_dir, clock=given.clock)


@cli.group("config", cls=AiopsGroup)
def config_group() -> None:
    """Check configuration files."""


@config_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def config_check(files: tuple[Path, ...]) -> None:
    """Validate config FILES; print every problem as FILE: key.path: expected …, found …

    Example: aiops config check config/agent.example.yaml
    """
    failed = False
    for path in files:
        try:
            load_config(path)
        except ConfigError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(str(problem), err=True)
        else:
            click.echo(f"{path}: ok")
    if failed:
        sys.exit(ConfigError.exit_code)


@cli.command("once")
@format_option("text", "json", json_alias=True)
@output_option
@with_config(shard=True)
def once(config: AgentConfig, state_dir: Path, fmt: str) -> None:
    """Run one cycle (collect → detect → correlate → remediate → notify), then the refits it made
    due, and exit.

    Exits 1 when a stage failed, or when every target of the source failed (each is named with its
    URL and why). Example: aiops once --config agent.yaml --state-dir /tmp/aiops
    """
    from agent import log
    from agent.context import Context
    from agent.pipeline import Pipeline

    log.setup(config.agent.log_level, secrets=config.secrets())
    ctx = Context.create(config, state_dir)
    pipeline = Pipeline(ctx)
    try:
        cycle = pipeline.run_cycle()
        pipeline.refit(now=cycle.started_at)  # what the daemon's refit job would do: the next cycle scores with it
        ctx.workers.join()  # the runs it started beside the cycle end before the process does
    finally:
        pipeline.close()
        ctx.store.close()
    outcome = {
        "started_at": cycle.started_at.isoformat(), "duration_s": round(cycle.duration_s, 3),
        "series": len(cycle.samples), "hits": len(cycle.hits), "incidents": len(cycle.incidents),
        "runs": len(cycle.runs), "notified": cycle.notified, "failed_stages": cycle.failed_stages,
        "sources_failed": [{"target": t.target, "url": t.url, "kind": t.last_error_kind, "error": t.last_error}
                           for t in cycle.blind],
    }
    if fmt == "json":
        click.echo(json.dumps(outcome))
    else:
        click.echo(f"cycle done in {outcome['duration_s']}s: {outcome['series']} series, {outcome['hits']} hits, "
                   f"{outcome['incidents']} incidents touched, {outcome['runs']} remediation runs, "
                   f"{outcome['notified']} notifications"
                   + (f"; failed stages: {', '.join(cycle.failed_stages)}" if cycle.failed_stages else ""))
    if cycle.blind:
        what = "query" if config.sources.kind == "prometheus" else "target"
        click.echo(f"every {config.sources.kind} {what} failed, nothing was read:", err=True)
        for t in cycle.blind:
            click.echo(f"  {t.target} at {t.url}: {t.last_error} ({t.last_error_kind})", err=True)
    if cycle.failed_stages or cycle.blind:
        sys.exit(1)


@cli.command("status")
@format_option("text", "json")
@output_option
@config_option
@state_dir_option
def status(fmt: str, config_path: Path | None, state_dir: Path | None) -> None:
    """What the agents on the store last reported: each target of their source (URL, state, last
    success, last error and its kind, series), the detectors warming up and when their series are
    first scored, and the last cycle. Exits 1 when no agent has reported, a report is older than
    three intervals, or a last cycle failed a stage or read nothing.

    Example: aiops status --config /etc/aiops-agent/agent.yaml
    """
    from agent.cli.common import current_clock
    from agent.status import Report, as_json, text

    store = _existing_store(config_path, state_dir)
    try:
        report = Report(agents=tuple(store.status.all()), now=current_clock()())
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps(as_json(report), indent=2))
    else:
        for line in text(report):
            click.echo(line)
    if not report.healthy:
        sys.exit(1)


@cli.command("run")
@config_option
@state_dir_option
@shard_option
def run(config_path: Path | None, state_dir: Path | None, shard: str | None) -> None:
    """Run the scheduled daemon (as the systemd service does).

    Example: aiops run --config /etc/aiops-agent/agent.yaml
    """
    from agent.cli.common import resolve
    from agent.daemon import Daemon

    path, override = resolve(config_path, state_dir)
    sys.exit(Daemon(path, state_dir=override, shard=shard).run())


@cli.group("service", cls=AiopsGroup)
def service_group() -> None:
    """Install the systemd service."""


@service_group.command("install")
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), default=Path("/"), show_default=True,
              help="Root to write under, like DESTDIR: paths inside the files stay the final ones.")
@click.option("--exec-path", default=None, help="Path of the aiops executable the unit runs (default: this one).")
@click.option("--node-exporter", "node_exporter", default="http://127.0.0.1:9100/metrics", show_default=True,
              metavar="URL", help="The node_exporter the written config watches, if it answers now.")
def service_install(prefix: Path, exec_path: str | None, node_exporter: str) -> None:
    """Write the unit, a config for this machine and the state dir with safe modes. The config
    watches the local node_exporter when one answers; else it is a template to finish, which
    aiops config check refuses until it names an exporter. An existing config is kept.

    Example: aiops service install && systemctl daemon-reload && systemctl enable --now aiops-agent
    """
    from agent.service import install

    for line in install(prefix, exec_path=exec_path, node_exporter=node_exporter):
        click.echo(line)


@cli.group("store", cls=AiopsGroup)
def store_group() -> None:
    """Inspect, export and copy the store."""


def _existing_store(config_path: Path | None, state_dir: Path | None) -> "Store":
    """The store of --state-dir (else the config's store.url, else the file in its
    agent.state_dir); never a new empty SQLite file."""
    from agent.cli.common import resolve
    from agent.errors import StoreError
    from agent.store import STORE_FILE, Store

    path, override = resolve(config_path, state_dir)
    config = None if override else load_config(path)
    if config is not None and config.store.url is not None and not config.store.url.startswith("sqlite:"):
        return Store(config.store.url, password=config.store.password_value())
    if config is not None and config.store.url is not None:
        root_file = Path(config.store.url.removeprefix("sqlite:///"))
        if not root_file.is_file():
            raise StoreError(str(root_file), "expected the agent's store, found no such file")
        return Store(root_file)
    root = Path(override) if override else Path(config.agent.state_dir)  # type: ignore[union-attr]
    if not (root / STORE_FILE).is_file():
        raise StoreError(str(root / STORE_FILE), "expected the agent's store, found no such file "
                                                 "(give the state dir with --state-dir)")
    return Store(root / STORE_FILE)


@store_group.command("tables")
@config_option
@state_dir_option
def store_tables(config_path: Path | None, state_dir: Path | None) -> None:
    """List the store's tables with their row counts.

    Example: aiops store tables --state-dir /var/lib/aiops-agent
    """
    store = _existing_store(config_path, state_dir)
    try:
        counts = store.table_counts()
    finally:
        store.close()
    width = max(map(len, counts))
    for name, count in counts.items():
        click.echo(f"{name:<{width}}  {count}")


@store_group.command("schema")
@click.argument("table", required=False)
@config_option
@state_dir_option
def store_schema(table: str | None, config_path: Path | None, state_dir: Path | None) -> None:
    """Print the CREATE statement of TABLE, or the whole store's schema.

    Example: aiops store schema incidents
    """
    store = _existing_store(config_path, state_dir)
    try:
        click.echo(store.table_schema(table))
    finally:
        store.close()


@store_group.command("export")
@click.argument("table")
@format_option("json", "csv")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many rows.")
@output_option
@config_option
@state_dir_option
def store_export(table: str, fmt: str, limit: int | None, config_path: Path | None, state_dir: Path | None) -> None:
    """Write TABLE's rows as JSON (an array of objects) or CSV (a header, then a row per line).

    Example: aiops store export incidents --format csv --output incidents.csv
    """
    from agent.store.export import write_csv, write_json

    store = _existing_store(config_path, state_dir)
    try:
        rows = store.table_rows(table, limit=limit)
        if fmt == "csv":
            write_csv(sys.stdout, store.table_columns(table), rows)
        else:
            write_json(sys.stdout, rows)
    finally:
        store.close()


@store_group.command("copy")
@click.option("--to", "to_url", required=True, metavar="URL",
              help="The empty store to copy into: postgresql://USER@HOST:PORT/DATABASE (password: PGPASSWORD "
                   "or ~/.pgpass, never on the command line).")
@config_option
@state_dir_option
def store_copy(to_url: str, config_path: Path | None, state_dir: Path | None) -> None:
    """Copy every table of the store into an empty one (the audit chain intact); refuses a target
    that holds anything. Then point store.url at the copy.

    Example: aiops store copy --state-dir /var/lib/aiops-agent --to postgresql://aiops@db1:5432/aiops
    """
    from agent.store import Store
    from agent.store.copy import copy_store

    source = _existing_store(config_path, state_dir)
    target = Store(to_url)
    try:
        copied = copy_store(source, target)
    finally:
        source.close()
        target.dispose()
    click.echo(f"copied {sum(copied.values())} rows of {len(copied)} tables from {source.path} to {target.path}")


def _add_stage_commands() -> None:
    from agent.cli import (
        backtest,
        detection,
        incidents,
        notify,
        remediations,
        replay,
        report,
        rollouts,
    )

    for module in (incidents, notify, remediations, detection, backtest, replay, report, rollouts):
        for command in module.commands:
            cli.add_command(command)


_add_stage_commands()


def main() -> None:
    cli(prog_name="aiops")
