"""``python -m demo``: the demo's commands.

- ``python -m demo`` (or ``story``): the whole story, then everything stops (``--keep``: it stays up);
- ``up``: the stack and the agent, left running; ``inject KIND``: break it; ``down``: stop it all.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from agent.cli.common import AiopsGroup
from agent.errors import AiopsError
from demo.stack import FAULT_KINDS, running, stop_recorded

DEFAULT_ROOT = Path(".demo")
PROG = "python -m demo"
FAULTS = ["drift", "latency", "crash", "errors", "memory", "disk", "stuck-latency"]

root_option = click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_ROOT,
                           show_default=True, help="The demo stack's directory.")
fast_option = click.option("--fast", is_flag=True, help="1 s scrapes and 2 s cycles (as the tests run).")


@click.group(cls=AiopsGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def demo(click_ctx: click.Context) -> None:
    """The demo: a fraud-detection model served on this machine, watched by the agent.

    Without a command, tells the whole story (story). Example: python -m demo up, then
    python -m demo inject latency, then python -m demo down
    """
    if click_ctx.invoked_subcommand is None:
        click_ctx.invoke(story_command)


@demo.command("story")
@root_option
@click.option("--fault", default="drift", show_default=True, type=click.Choice(FAULTS), help="The fault to inject.")
@click.option("--story", "kind", default="fault", show_default=True, type=click.Choice(["fault", "rollout"]),
              help="fault: one injected fault, detected and remediated; rollout: guarded rollouts, retraining "
                   "behind a gate and the model's governance report.")
@fast_option
@click.option("--keep", is_flag=True, help="Leave the stack and the agent running at the end (then: inject, down).")
def story_command(root: Path, fault: str, kind: str, fast: bool, keep: bool) -> None:
    """Start the stack and the agent, inject a fault and narrate what the agent does; then stop
    everything it started, unless --keep.

    Example: python -m demo story --fault latency --keep
    """
    from demo import rollout_story
    from demo.run import DEMO, FAST, DemoRun
    from demo.story import console, say, story, waiting

    _refuse_running(root)
    shutil.rmtree(root, ignore_errors=True)
    run = DemoRun(root, FAST if fast else DEMO, retrain_on_drift=kind == "rollout")
    console.print("[bold]aiops-agent demo[/]: a fraud-detection model served on this machine, watched by the agent.\n")
    started = time.monotonic()
    code = 1
    try:
        if kind == "rollout":
            code = rollout_story.story(run, say, lambda text: console.print(text, highlight=False), waiting)
        else:
            code = story(run, fault)
    except AiopsError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
    finally:
        if keep and code == 0:
            run.release()
            console.print("")
            for line in _running_lines(run.stack.info, root):
                console.print(line, highlight=False, markup=False)
        else:
            console.print("\nStopping everything the demo started …")
            run.stop()
    console.print(f"Done in {time.monotonic() - started:.0f}s.")
    raise SystemExit(code)


@demo.command("up")
@root_option
@fast_option
def up_command(root: Path, fast: bool) -> None:
    """Start the stack (Prometheus over backfilled history, node_exporter, the model service) and
    the agent, wait until its detectors are fitted, and leave it all running.

    Example: python -m demo up && python -m demo inject latency && python -m demo down
    """
    from demo.run import DEMO, FAST, DemoRun

    _refuse_running(root)
    shutil.rmtree(root, ignore_errors=True)
    run = DemoRun(root, FAST if fast else DEMO)
    click.echo(f"starting the demo stack in {root} (history backfill, Prometheus, the model service, the agent) …")
    try:
        run.start_stack()
        run.start_agent()
        run.wait_fitted(timeout_s=300)
    except BaseException:
        run.stop()
        raise
    run.release()
    for line in _running_lines(run.stack.info, root):
        click.echo(line)


@demo.command("inject")
@click.argument("kind", type=click.Choice(FAULT_KINDS))
@root_option
def inject_command(kind: str, root: Path) -> None:
    """Inject a fault into the running demo stack.

    Example: python -m demo inject latency --root .demo
    """
    from agent.store import Store
    from demo.faults import inject

    if not running(root):
        raise click.ClickException(f"no demo stack is up in {root}: start one with {PROG} up")
    store_path = root / "state" / "aiops.db"
    store = Store(store_path) if store_path.exists() else None
    try:
        click.echo(inject(root, kind, store=store))
    finally:
        if store is not None:
            store.close()


@demo.command("down")
@root_option
def down_command(root: Path) -> None:
    """Stop the agent, the service, node_exporter and Prometheus of the demo stack; its store and
    logs stay in the directory.

    Example: python -m demo down --root .demo
    """
    if not (root / "stack.json").exists():
        raise click.ClickException(f"no demo stack in {root}")
    stopped = stop_recorded(root)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else f"nothing of the demo stack in {root} was running")
    click.echo(f"kept: the store {root / 'state' / 'aiops.db'} and the logs in {root / 'logs'}")


def _refuse_running(root: Path) -> None:
    up = running(root)
    if up:
        raise click.ClickException(f"a demo stack is up in {root} ({', '.join(up)}): stop it first with {PROG} down")


def _running_lines(info: object, root: Path) -> list[str]:
    from demo.stack import StackInfo

    assert isinstance(info, StackInfo)
    return [
        "the demo stack is up:",
        f"  Prometheus     {info.prometheus_url}",
        f"  model service  {info.service_url}",
        f"  the agent      http://127.0.0.1:{info.agent_port}/status (and /incidents, /metrics)",
        f"  its config     {root / 'agent.yaml'}  (aiops status --config {root / 'agent.yaml'})",
        f"break it:        {PROG} inject KIND ({', '.join(FAULT_KINDS)})",
        f"stop it:         {PROG} down",
    ]
