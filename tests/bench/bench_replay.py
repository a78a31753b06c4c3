"""Benchmark: ``aiops replay`` of 7 days of 1,000 series at 1-minute steps.

Builds 8 days of history of 250 hosts x 4 metrics (a daily cycle, noise, a fault on web-1 on
the third day; the first day is the history the detectors fit on before the range), backfills it into
a real Prometheus with promtool and into an embedded store, and times the command users run:
``aiops replay --from D1 --to D8 --format json`` over Prometheus (``replay_7d_1k_s``) and over
the embedded history (``replay_embedded_7d_1k_s``), each in a child process whose peak RSS is
its own (``peak_rss_mb``: the larger of the two).

``matches_daemon``: the same data run through the daemon's pipeline one cycle at a time
(``Pipeline.refit`` then ``Pipeline.run_cycle`` every interval, the Prometheus source built
from the config) opens the same incidents (title, start, detection, resolution, episodes)
as the replay; ``matches_daemon_exact`` the same for ``aiops replay --exact``. A cycle at a time costs about 0.1 s here, so the comparison runs on three hosts'
12 series over the day of the fault of one of them, both started as a daemon already running
(detectors fitted on the history before the day). Prints figures, then one JSON line.

Run: .venv/bin/python tests/bench/bench_replay.py [--days N] [--hosts N] [--only prometheus|embedded]
[--no-match]. Fewer days or hosts than the target's (7, 250) print ``replay_s`` and
``replay_embedded_s`` for that size with ``series`` and ``days``, and no ``*_7d_1k_s`` key.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

HOSTS = 250  # x 4 metrics = 1,000 series
DAYS = 7
START = pd.Timestamp("2026-11-01", tz="UTC")  # the history's first day; the range starts a day later
FROM = START + pd.Timedelta(days=1)
MATCH_DAY = START + pd.Timedelta(days=3)  # web-1's fault day (see history)
MATCH_HOSTS = 'web-[123]'


def history(days: int, hosts: int):
    """The same history in every process: seeded, with a fault on web-1 on the third day."""
    from tests.replay.history import fleet

    return fleet(START, days=1 + days, hosts=hosts, fault_at=MATCH_DAY + pd.Timedelta(hours=10))


def backfill_child(data_dir: str, days: int, hosts: int) -> None:
    from tests.fixtures.prometheus import Family, backfill, openmetrics

    h = history(days, hosts)

    def chunks():
        for family in h.families():
            for k in range(0, len(family.series), 25):  # one family's samples together, 25 series a chunk
                text = openmetrics([Family(name=family.name, series=family.series[k:k + 25])])
                text = text.removesuffix("# EOF\n")
                yield text if k == 0 else text.split("\n", 1)[1]
        yield "# EOF\n"

    backfill(chunks(), Path(data_dir))


def embedded_child(state_dir: str, days: int, hosts: int) -> None:
    from agent.store import Store

    h = history(days, hosts)
    store = Store(Path(state_dir) / "aiops.db")
    per_day = 86400 // 60
    for day in range(1 + days):
        cut = slice(day * per_day, (day + 1) * per_day)
        store.backfill_samples(h.series, h.ts[cut], h.values[:, cut], now=float(h.ts[cut][-1]))
    store.close()


def replay_child(config: str, out: str, days: int) -> None:
    """One ``aiops replay`` as a user runs it; prints its seconds and this process' peak RSS."""
    from click.testing import CliRunner

    from agent.cli import cli

    started = time.perf_counter()
    to = FROM + pd.Timedelta(days=days)
    result = CliRunner().invoke(cli, ["replay", "--config", config, "--from", FROM.isoformat(), "--to", to.isoformat(),
                                      "--format", "json", "-o", out, "--no-progress"])
    elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        sys.exit(f"replay failed ({result.exit_code}): {result.output[-2000:]}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"elapsed_s": elapsed, "peak_rss_mb": rss_mb}))


def match_child(config: str, work: str) -> None:
    """The replay and the daemon cycle by cycle over MATCH_DAY; prints both incident lists."""
    import logging

    from agent.backtest.cycles import Judging
    from agent.clock import ManualClock
    from agent.config import load_config
    from agent.context import Context
    from agent.pipeline import Pipeline
    from agent.replay.run import replay_config, run_replay
    from agent.store import Store

    logging.getLogger("agent").setLevel(logging.ERROR)
    cfg = load_config(Path(config))
    start, end = MATCH_DAY, MATCH_DAY + pd.Timedelta(days=1)
    replayed = run_replay(cfg, start, end, Path(work) / "replay", source_name="prometheus")
    exact = run_replay(cfg, start, end, Path(work) / "exact", source_name="prometheus", judging=Judging.CYCLES)
    daemon_cfg = replay_config(cfg, Path(work) / "daemon")
    clock = ManualClock(start.to_pydatetime())
    ctx = Context.create(daemon_cfg, clock=clock)
    pipeline = Pipeline(ctx, report=False)
    window = pd.Timedelta(seconds=daemon_cfg.sources.window)
    ctx.store.set_collected_until(f"{daemon_cfg.sources.kind}:{daemon_cfg.agent.shard}", (start - window).timestamp())
    # a daemon already running at start: what came before is judged, its detectors fitted on it
    first = pipeline.collector.collect(start.to_pydatetime())
    pipeline.engine.scored_until.update({sid: start for sid in first.series})
    pipeline.engine.refit(now=start.to_pydatetime(), samples=first)
    cycles = 0
    for tick in pd.date_range(start + pd.Timedelta(seconds=cfg.agent.interval), end, freq=f"{cfg.agent.interval:g}s"):
        clock.set(tick.to_pydatetime())
        pipeline.refit(now=tick.to_pydatetime())
        pipeline.run_cycle(now=tick.to_pydatetime())
        cycles += 1
    pipeline.close()
    ctx.store.close()

    def incidents(path: Path) -> list[list[str]]:
        store = Store(path)
        try:
            return sorted([i.title, str(i.started_at), str(i.detected_at), str(i.resolved_at), str(len(i.episodes))]
                          for i in store.list_incidents())
        finally:
            store.close()

    print(json.dumps({"cycles": cycles, "series": replayed.days[0].series,
                      "replay": incidents(replayed.state_dir / "aiops.db"),
                      "exact": incidents(exact.state_dir / "aiops.db"),
                      "daemon": incidents(Path(work) / "daemon" / "aiops.db")}))


def child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"child {args[0]} failed: {done.stderr[-3000:]}{done.stdout[-1000:]}")
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def config_text(state_dir: Path, source: str) -> str:
    return f"agent:\n  state_dir: {state_dir}\n{source}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=DAYS, help="days replayed (a day of history before them)")
    parser.add_argument("--hosts", type=int, default=HOSTS, help="hosts of 4 series each")
    parser.add_argument("--only", choices=("prometheus", "embedded"), help="replay from one source only")
    parser.add_argument("--no-match", action="store_true", help="skip the comparison with the daemon")
    args = parser.parse_args()
    if args.days < 1 or args.hosts < 3:
        parser.error(f"expected --days >= 1 and --hosts >= 3, found {args.days} and {args.hosts}")
    if not args.no_match and args.days < 3:
        parser.error("the comparison with the daemon replays the third day: give --days >= 3 or --no-match")
    return args


def replay_both(work: Path, server_url: str, args: argparse.Namespace) -> dict[str, dict]:
    """Each source's replay in a child process: its seconds, peak RSS and report."""
    prom = work / "prometheus.yaml"
    prom.write_text(config_text(work / "unused", (
        f"sources:\n  kind: prometheus\n  prometheus:\n    url: {server_url}\n    timeout: 120s\n"
        "    queries:\n      - {name: node, expr: '{job=\"node\"}', step: 60s}\n")))
    emb = work / "embedded.yaml"
    emb.write_text(config_text(work / "live", "sources:\n  kind: scrape\n"))
    figures = {}
    for name, config in (("prometheus", prom), ("embedded", emb)):
        if args.only not in (None, name):
            continue
        out = work / f"{name}.json"
        figures[name] = child("--replay", str(config), str(out), str(args.days))
        report = json.loads(out.read_text())
        figures[name]["report"] = report
        series = {d["series"] for d in report["timeline"]}
        if report["days"] != args.days or series != {args.hosts * 4}:
            sys.exit(f"{name}: replayed {report['days']} days of {series} series, expected {args.days} of "
                     f"{args.hosts * 4}: the figure would not be of the benchmark's data")
        if figures[name]["elapsed_s"] <= 0 or figures[name]["peak_rss_mb"] <= 0:
            sys.exit(f"impossible figures for {name}: {figures[name]}")
    return figures


def compare(work: Path, server_url: str) -> dict:
    match_config = work / "match.yaml"
    match_config.write_text(config_text(work / "unused", (
        f"sources:\n  kind: prometheus\n  prometheus:\n    url: {server_url}\n    queries:\n"
        f"      - {{name: node, expr: '{{job=\"node\",instance=~\"{MATCH_HOSTS}\"}}', step: 60s}}\n")))
    started = time.perf_counter()
    match = child("--match", str(match_config), str(work / "match"))
    match["seconds"] = time.perf_counter() - started
    if not match["replay"]:
        sys.exit("the match day opened no incident: matches_daemon would compare nothing")
    match["matches"] = match["replay"] == match["daemon"]
    match["matches_exact"] = match["exact"] == match["daemon"]
    print(f"daemon cycle by cycle ({match['cycles']} cycles, {match['series']} series, {match['seconds']:.0f} s with "
          f"the replays of the same day): {len(match['daemon'])} incidents; replay {len(match['replay'])}: "
          f"{'the same' if match['matches'] else 'DIFFERENT'}; replay --exact {len(match['exact'])}: "
          f"{'the same' if match['matches_exact'] else 'DIFFERENT'}")
    if not (match["matches"] and match["matches_exact"]):
        for name in ("replay", "exact", "daemon"):
            for row in sorted(map(tuple, match[name])):
                print(f"  {name}", *row)
    return match


def main() -> None:
    from tests.fixtures.prometheus import HAVE_PROMETHEUS, start_prometheus

    args = arguments()
    if not HAVE_PROMETHEUS:
        sys.exit("needs /usr/bin/prometheus and /usr/bin/promtool (Debian package prometheus)")
    series = args.hosts * 4
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shape = [str(args.days), str(args.hosts)]
        if args.only != "embedded" or not args.no_match:
            started = time.perf_counter()
            child("--backfill", str(work / "tsdb"), *shape)
            print(f"backfill of {series} series x {1 + args.days} days with promtool: "
                  f"{time.perf_counter() - started:.0f} s")
        if args.only != "prometheus":
            started = time.perf_counter()
            child("--embedded", str(work / "live"), *shape)
            print(f"the same into an embedded store: {time.perf_counter() - started:.0f} s")
        server = start_prometheus(work / "prometheus", data_dir=work / "tsdb")
        try:
            figures = replay_both(work, server.url, args)
            match = None if args.no_match else compare(work, server.url)
        finally:
            server.stop()
    result: dict[str, object] = {"bench": "replay", "series": series, "days": args.days}
    full = (args.days, args.hosts) == (DAYS, HOSTS)
    for name, r in ((n, f["report"]) for n, f in figures.items()):
        seconds = figures[name]["elapsed_s"]
        per = seconds / args.days / (series / 1000)
        print(f"{name}: {r['days']} days x {series} series in {seconds:.1f} s ({per:.1f} s a day per 1,000 series), "
              f"peak RSS {figures[name]['peak_rss_mb']:.0f} MB; {len(r['incidents'])} incidents, {r['pages']} pages "
              f"({r['pages_per_day']:.2f} a day)")
        key = "replay" if name == "prometheus" else "replay_embedded"
        result[f"{key}_7d_1k_s" if full else f"{key}_s"] = round(seconds, 1)
        result[f"{key}_s_per_day_1k"] = round(per, 1)
    result["peak_rss_mb"] = round(max(f["peak_rss_mb"] for f in figures.values()), 1)
    if match is not None:
        result.update({"matches_daemon": match["matches"], "matches_daemon_exact": match["matches_exact"],
                       "matches_daemon_series": match["series"], "matches_daemon_incidents": len(match["daemon"])})
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (targets: <= 300 s, < 1024 MB)")
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--backfill":
        backfill_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--embedded":
        embedded_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--replay":
        replay_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--match":
        match_child(sys.argv[2], sys.argv[3])
    else:
        main()
