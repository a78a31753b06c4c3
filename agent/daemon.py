"""The scheduled daemon: decides *when* cycles run; ``agent.pipeline`` says what one does.

``agent.schedule`` runs the cycle job on the monotonic clock, one run at a time, so a cycle that
overruns makes the next one be skipped (logged, counted), never stacked, and a step of the wall
clock changes nothing. Refits and retention are jobs of their own beside the cycles: the refit job
fits the detectors that are due (every cycle interval, on the series the last cycle judged),
retention prunes old rows. SIGTERM and SIGINT stop after the stage in progress and cancel the
playbook runs under way beside the cycle (they end recorded ``interrupted``); a stage still
running after ``agent.stop_timeout`` is abandoned and the process exits anyway, so a stop never
waits on a hung query. SIGHUP reloads the config (an invalid one is refused and the old one
kept). systemd hears READY=1, WATCHDOG=1, a one-line STATUS= and STOPPING=1.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent import log as agentlog
from agent.clock import utcnow
from agent.config import AgentConfig, load_config, with_shard
from agent.context import Context
from agent.errors import ConfigError, StoreDamagedError
from agent.flow.leases import shard_lease
from agent.leases import LeaseKeeper
from agent.log import kv
from agent.pipeline import Cycle, Pipeline
from agent.schedule import Scheduler
from agent.sdnotify import SdNotifier
from agent.store.base import store_error

log = logging.getLogger(__name__)

STOP_AFTER_S = 4.0  # after agent.stop_timeout: the HTTP server, the leases and the stop's audit entry
CYCLE_JOB = "cycle"
REFIT_JOB = "refit"
RETENTION_JOB = "retention"


class Daemon:
    """``clock`` and ``monotonic``: the wall clock that dates records and the monotonic clock that
    times schedules and staleness (a test gives its own; the defaults are the system's)."""

    def __init__(self, config_path: Path, *, state_dir: Path | None = None, shard: str | None = None,
                 notifier: SdNotifier | None = None, clock: Callable[[], datetime] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config_path = Path(config_path)
        self.shard = shard
        self.state_dir_override = state_dir
        self.notifier = notifier or SdNotifier()
        self.clocks: dict[str, Any] = {"monotonic": monotonic, **({"clock": clock} if clock else {})}
        self.ctx: Context | None = None
        self.pipeline: Pipeline | None = None
        self.scheduler: Scheduler | None = None
        self.housekeeping: BackgroundScheduler | None = None  # retention, on the wall clock
        self._cycle_lock = threading.Lock()
        self._cycle_running = threading.Event()
        self._stopped = threading.Event()
        # Signals are queued by the handler and acted on by a thread of their own: a handler runs
        # in the main thread between any two bytecodes, possibly inside a lock the scheduler holds
        # (stopping the scheduler from there deadlocks). SimpleQueue.put is safe in a handler.
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._http: Any = None
        self._last: Cycle | None = None
        self.exit_code = 0  # what run() returns: 1 when the agent stopped on a fault of its own

    # -- life cycle -------------------------------------------------------------------------

    def run(self) -> int:
        config = self._load()  # a bad config stops start-up with exit code 2
        agentlog.setup(config.agent.log_level, secrets=config.secrets())
        self.ctx = ctx = Context.create(config, self.state_dir_override, **self.clocks)
        ctx.health.start(ctx.monotonic())
        try:
            ctx.store.audit("agent", "agent.start", str(self.config_path), {"state_dir": str(ctx.state_dir)},
                            now=ctx.clock())
        except sqlite3.Error as exc:  # a full disk at start: one line (the CLI prints it), no traceback
            ctx.store.close()
            raise store_error(ctx.store.path, exc) from None
        self.pipeline = Pipeline(ctx)
        # Several agents may share the store: work only while holding this shard's lease.
        ctx.leases = LeaseKeeper(ctx.store, shard=config.agent.shard, ttl_s=config.agent.interval,
                                 clock=ctx.clock, monotonic=ctx.monotonic, metrics=ctx.metrics,
                                 on_taken=self._on_lease_taken)
        ctx.metrics.agent_info.labels(holder=ctx.leases.holder, shard=config.agent.shard).set(1)
        ctx.leases.start()
        self.scheduler = scheduler = Scheduler(monotonic=ctx.monotonic, on_skipped=self._on_skipped,
                                              on_thread_end=ctx.store.close)
        scheduler.add(CYCLE_JOB, self._cycle_job, interval_s=config.agent.interval)
        scheduler.add(REFIT_JOB, self._refit_job, interval_s=config.agent.interval)
        # Housekeeping runs on APScheduler's wall-clock interval trigger, beside the cycles: pruning
        # in short batches of its own, first after one interval. A step of the wall clock only
        # moves a prune; what health depends on (cycles, refits) is timed on the monotonic clock.
        self.housekeeping = housekeeping = BackgroundScheduler(daemon=True, timezone=timezone.utc)
        housekeeping.add_job(self._retention_job, IntervalTrigger(seconds=config.retention.interval),
                             id=RETENTION_JOB, max_instances=1, coalesce=True, misfire_grace_time=None,
                             next_run_time=utcnow() + timedelta(seconds=config.retention.interval))
        housekeeping.start()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        threading.Thread(target=self._signal_loop, name="signals", daemon=True).start()
        if config.http.enabled:
            self._http = start_http(ctx, self)
        watchdog = threading.Thread(target=self._watchdog_loop, name="watchdog", daemon=True)
        watchdog.start()
        log.info(kv("agent.started", config=str(self.config_path), state_dir=str(ctx.state_dir),
                    interval_s=config.agent.interval, shard=config.agent.shard, holder=ctx.leases.holder))
        self.notifier.ready("starting: first cycle under way")
        try:
            scheduler.run()  # blocks until stop()
        finally:
            abandoned = self._shutdown()
        if abandoned:
            # A stage or a run that outlived agent.stop_timeout (a hung query, a stuck library
            # call): the stop does not wait on it. Its store transaction, never committed, is
            # rolled back by the database when the process is gone.
            logging.shutdown()
            os._exit(self.exit_code)
        return self.exit_code

    def _load(self) -> AgentConfig:
        return with_shard(load_config(self.config_path), self.shard)

    def stop(self, reason: str = "requested") -> None:
        if self.ctx is None or self.ctx.stopping.is_set():
            return
        log.info(kv("agent.stopping", reason=reason))
        self.notifier.stopping()
        self.ctx.stopping.set()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.housekeeping is not None and self.housekeeping.running:
            self.housekeeping.shutdown(wait=False)

    def _shutdown(self) -> bool:
        """Wait for the stage in progress and the runs under way (``agent.stop_timeout`` in all),
        release the leases, record the stop; True when something still runs and was abandoned."""
        assert self.ctx is not None
        if self.housekeeping is not None and self.housekeeping.running:
            self.housekeeping.shutdown(wait=False)
        timeout = self.ctx.config.agent.stop_timeout
        deadline = time.monotonic() + timeout
        while self._cycle_running.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        abandoned = self._cycle_running.is_set()
        if abandoned:
            log.warning(kv("agent.stop_timeout", waited_s=timeout, note="a stage is still running; abandoned"))
        # Runs under way were cancelled by the stop (SIGTERM, then SIGKILL): wait for them to be
        # recorded interrupted before the store closes.
        if not self.ctx.workers.join(max(0.0, deadline - time.monotonic())):
            abandoned = True
            log.warning(kv("agent.stop_timeout", waited_s=timeout, note="a playbook run is still ending",
                           runs=",".join(self.ctx.workers.under_way())))
        # What is left takes at most STOP_AFTER_S more, whatever the store or a client does.
        finish_by = time.monotonic() + STOP_AFTER_S
        if self._http is not None:
            self._http.stop(timeout_s=1.0)
        if isinstance(self.ctx.leases, LeaseKeeper):  # after the last cycle: a waiting agent takes over at once
            self.ctx.leases.stop(timeout_s=max(0.1, (finish_by - time.monotonic()) / 3))
        if self.pipeline is not None and not abandoned:
            self.pipeline.close()
        self._record_stop(max(0.1, finish_by - time.monotonic()))
        if not abandoned:
            self.ctx.store.close()
        self._stopped.set()
        log.info(kv("agent.stopped", abandoned=abandoned or None))
        return abandoned

    def _record_stop(self, timeout_s: float) -> None:
        """The ``agent.stop`` audit entry, within a few seconds or not at all (a store that does
        not answer must not hold the stop up)."""
        assert self.ctx is not None
        ctx = self.ctx

        def record() -> None:
            try:
                ctx.store.audit("agent", "agent.stop", str(self.config_path), {}, now=ctx.clock())
            except sqlite3.Error as exc:  # the stop still completes; the next start reports the disk
                log.error(kv("agent.stop_unrecorded", error=str(store_error(ctx.store.path, exc))))
            except Exception as exc:
                log.error(kv("agent.stop_unrecorded", error=type(exc).__name__))
            finally:
                ctx.store.close()  # this thread's connection

        writer = threading.Thread(target=record, name="stop-record", daemon=True)
        writer.start()
        writer.join(timeout_s)
        if writer.is_alive():
            log.error(kv("agent.stop_unrecorded", error=f"the store did not answer within {timeout_s:.1f}s"))

    # -- cycles -----------------------------------------------------------------------------

    def _cycle_job(self) -> None:
        ctx, pipeline = self.ctx, self.pipeline
        assert ctx is not None and pipeline is not None
        if ctx.stopping.is_set() or not self._working():
            return
        with self._cycle_lock:
            self._cycle_running.set()
            try:
                cycle = pipeline.run_cycle()
            except StoreDamagedError as exc:  # every cycle would fail alike: stop, saying why once
                log.error(kv("store.damaged", error=str(exc)))
                self.exit_code = 1
                self.stop("the store is damaged")
                return
            except Exception:  # the pipeline catches per stage; this is the last line of defence
                log.exception(kv("cycle.crashed"))
                ctx.metrics.cycles_failed.inc()
                ctx.health.record(["pipeline"], at=ctx.monotonic())
                return
            finally:
                self._cycle_running.clear()
        self._last = cycle
        ctx.health.record(cycle.failed_stages, at=ctx.monotonic(), blind=cycle.blind_reason)
        self.notifier.watchdog()
        self.notifier.status(self.status_line(cycle))

    def _on_lease_taken(self, name: str) -> None:
        """A standby that takes its shard's lease works at once, not at its next cycle tick."""
        ctx, scheduler = self.ctx, self.scheduler
        if ctx is None or scheduler is None or ctx.stopping.is_set():
            return  # at start the first cycle is due at once anyway
        if name != shard_lease(ctx.config.agent.shard):
            return
        scheduler.run_now(CYCLE_JOB)

    def _working(self) -> bool:
        """Whether this agent holds its shard's lease; a change either way is logged once."""
        ctx = self.ctx
        assert ctx is not None
        working = ctx.leases.working()
        if working and ctx.health.waiting:
            log.info(kv("agent.active", shard=ctx.config.agent.shard, holder=ctx.leases.holder))
            ctx.health.work(ctx.monotonic())
            self.notifier.status(f"active: holds shard {ctx.config.agent.shard}")
        elif not working and not ctx.health.waiting:
            holders = ctx.leases.held()
            log.info(kv("agent.standby", shard=ctx.config.agent.shard,
                        held_by=holders.get(shard_lease(ctx.config.agent.shard))))
            ctx.health.wait()
            self.notifier.status(f"standby: another agent holds shard {ctx.config.agent.shard}")
        return working

    def _refit_job(self) -> None:
        ctx, pipeline = self.ctx, self.pipeline
        assert ctx is not None and pipeline is not None
        if ctx.stopping.is_set() or not ctx.leases.working():
            return
        try:
            pipeline.refit(now=ctx.clock())
        except Exception:  # a refit that fails leaves the fitted state as it was: try again next interval
            log.exception(kv("refit.failed"))
            ctx.metrics.stage_failures.labels(stage="refit").inc()

    def _retention_job(self) -> None:
        from agent.report.retention import prune

        ctx = self.ctx
        assert ctx is not None
        if ctx.stopping.is_set() or not ctx.leases.leading():  # the store is pruned once, by the leader
            return
        try:
            outcome = prune(ctx, now=ctx.clock())
        except Exception:  # pruning is housekeeping: log, count, try again next interval
            log.exception(kv("retention.failed"))
            ctx.metrics.stage_failures.labels(stage="retention").inc()
            return
        deleted = sum(outcome.get("deleted", {}).values())
        log.info(kv("retention.pruned", rows=deleted, complete=outcome.get("complete")))

    def status_line(self, cycle: Cycle) -> str:
        assert self.ctx is not None
        try:
            open_incidents = self.ctx.store.count_open_incidents()
        except Exception:  # a status line must never fail a cycle
            open_incidents = -1
        state = ("ok" if cycle.ok else "failed: " + ",".join(cycle.failed_stages) if cycle.failed_stages
                 else "blind: every source failed" if cycle.blind else "stopped")
        return (f"last cycle {cycle.started_at:%H:%M:%S}Z {state} in {cycle.duration_s:.1f}s: "
                f"{len(cycle.samples)} series, {len(cycle.hits)} hits; "
                f"{open_incidents if open_incidents >= 0 else '?'} open incidents")

    def _on_skipped(self, job: str, _reason: str) -> None:
        if job != CYCLE_JOB or self.ctx is None:
            return
        self.ctx.metrics.cycles_skipped.inc()
        log.warning(kv("cycle.skipped", reason="previous cycle still running"))

    def _watchdog_loop(self) -> None:
        period = self.notifier.watchdog_s
        if not period or self.ctx is None:
            return
        ping_every = max(period / 3, 0.5)
        while not self._stopped.wait(ping_every):
            # Ping while idle between cycles, or while the running stage keeps beating;
            # a stage stuck past the watchdog period gets the service restarted by systemd.
            if not self._cycle_running.is_set() or self.ctx.heartbeat.age_s() < period:
                self.notifier.watchdog()

    # -- signals and reload ------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals.put(signum)  # nothing else here: see __init__

    def _signal_loop(self) -> None:
        while True:
            signum = self._signals.get()
            if signum == signal.SIGHUP:
                threading.Thread(target=self.reload, kwargs={"actor": "signal:SIGHUP"}, name="reload",
                                 daemon=True).start()
            else:
                self.stop(reason=signal.Signals(signum).name)

    def reload(self, *, actor: str = "agent") -> list[str]:
        """Reload the config file; returns the errors (empty when the new config took effect)."""
        assert self.ctx is not None
        self.notifier.reloading()
        try:
            new = self._load()
        except ConfigError as exc:
            for problem in exc.problems:
                log.error(kv("config.reload_rejected", problem=str(problem)))
            self.ctx.metrics.config_reloads.labels(outcome="rejected").inc()
            self.ctx.store.audit(actor, "config.reload_rejected", str(self.config_path),
                                 {"errors": [str(p) for p in exc.problems], "reason": _reload_reason(actor)}, now=self.ctx.clock())
            self.notifier.ready("config reload rejected; old config kept")
            return [str(p) for p in exc.problems]
        old = self.ctx.config
        self.ctx.config = new
        agentlog.setup(new.agent.log_level, secrets=new.secrets())
        if isinstance(self.ctx.leases, LeaseKeeper):
            self.ctx.leases.ttl_s = new.agent.interval
        if self.scheduler is not None and new.agent.interval != old.agent.interval:
            for job in (CYCLE_JOB, REFIT_JOB):
                self.scheduler.reschedule(job, new.agent.interval)
        self.ctx.metrics.config_reloads.labels(outcome="applied").inc()
        self.ctx.store.audit(actor, "config.reload", str(self.config_path),
                             {"interval_s": new.agent.interval, "reason": _reload_reason(actor)},
                             now=self.ctx.clock())
        log.info(kv("config.reloaded", config=str(self.config_path), interval_s=new.agent.interval))
        self.notifier.ready("config reloaded")
        return []


def _reload_reason(actor: str) -> str:
    if actor.startswith("signal:"):
        return f"{actor.split(':', 1)[1]} received (systemctl reload)"
    if actor == "api":
        return "POST /api/v1/reload"
    return "requested"


class HttpServer:
    """uvicorn in a thread of its own, stopped with the daemon."""

    def __init__(self, ctx: Context, daemon: Daemon | None) -> None:
        import uvicorn

        from agent.api import create_app
        from agent.api.server import ConnectionGuard, Limits, RequestGuard

        http = ctx.config.http
        limits = Limits.of(http)
        self.connections = ConnectionGuard(limits, ctx.metrics)
        app = RequestGuard(create_app(ctx, daemon=daemon), limits, ctx.metrics)
        # log_config=None: uvicorn's records go through the agent's handler (one logfmt line each,
        # secrets scrubbed, floods of like errors held back) instead of a handler of its own.
        self.config = uvicorn.Config(app, host=http.listen, port=http.port, http=self.connections.protocol_factory(),
                                     backlog=self.connections.backlog, log_level="warning", access_log=False,
                                     lifespan="off", log_config=None)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            log.error(kv("http.failed", listen=self.config.host, port=self.config.port))
            return
        log.info(kv("http.listening", addr=f"{self.config.host}:{self.port}"))

    @property
    def port(self) -> int:
        for server in getattr(self.server, "servers", []) or []:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.config.port)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=timeout_s)


def start_http(ctx: Context, daemon: Daemon | None) -> HttpServer:
    server = HttpServer(ctx, daemon)
    server.start()
    return server
