"""Break the demo stack on purpose: ``python -m demo inject KIND``.

| kind          | what happens                                             | what fixes it           |
|---------------|----------------------------------------------------------|-------------------------|
| latency       | inference latency x10 inside the serving process         | restarting the service  |
| errors        | 30% of requests fail inside the serving process          | restarting the service  |
| memory        | the serving process leaks 8 MB a second                  | restarting the service  |
| crash         | the serving process is killed                            | restarting the service  |
| drift         | model v3 is rolled out (recorded as a change); its       | rolling the model back  |
|               | preprocessing shifts the input features                  |                         |
| disk          | the service's scratch dir fills with old spool files     | freeing disk            |
| stuck-latency | latency x10 that survives a restart                      | nothing automatic       |
| bad-labels    | the training labels are shuffled: the next retrained     | the retrain gate        |
|               | candidate is no better than chance                       | refuses it              |
"""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime, timedelta
from pathlib import Path

from agent.clock import utcnow
from agent.errors import AiopsError
from agent.store import Store
from demo.stack import FAULT_KINDS, MODEL_VERSIONS, load_info, read_pid


def _write_faults(root: Path, faults: dict[str, object]) -> None:
    path = root / "faults.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(faults))
    tmp.replace(path)  # the service never reads half a file


def inject(root: Path, kind: str, *, store: Store | None = None, now: datetime | None = None) -> str:
    """Inject one fault; returns a sentence saying what was done."""
    now = now or utcnow()
    load_info(root)  # fails clearly when no stack runs there
    if kind == "latency":
        _write_faults(root, {"latency_factor": 9.0})
        return "inference latency raised tenfold inside the serving process"
    if kind == "stuck-latency":
        _write_faults(root, {"latency_factor": 9.0, "sticky": True})
        return "inference latency raised tenfold, surviving restarts"
    if kind == "errors":
        _write_faults(root, {"error_rate": 0.3})
        return "30% of inference requests now fail"
    if kind == "memory":
        _write_faults(root, {"leak_mb_per_s": 8})
        return "the serving process leaks 8 MB a second"
    if kind == "crash":
        pid = read_pid(root)
        if pid is None:
            raise AiopsError("the demo service is not running")
        os.kill(pid, signal.SIGKILL)
        return f"the serving process (pid {pid}) was killed"
    if kind == "disk":
        scratch = root / "scratch"
        old = (now - timedelta(days=3)).timestamp()
        for i in range(40):
            spool = scratch / f"spool-{i:03d}.dat"
            spool.write_bytes(os.urandom(1024) * 1024)  # 1 MiB
            os.utime(spool, (old, old))
        return "the scratch dir filled with 40 MiB of three-day-old spool files"
    if kind == "bad-labels":
        (root / "models" / "training.json").write_text(json.dumps({"corrupt_labels": True}))
        return "the labelling pipeline broke: training labels are shuffled"
    if kind == "drift":
        models = root / "models"
        current = models / "current"
        tmp = models / "current.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to("versions/v3")
        with (models / "history").open("a") as history:
            history.write("v3\n")
        if store is not None:  # recorded first, as a deploy should: the agent may look in between
            store.add_change(ts=now, kind="model_rollout",
                             labels={"model": "fraud", "job": "demo-model", "version": "v3"},
                             description="roll out fraud model v3 (new feature preprocessing)",
                             actor="demo", now=now)
        tmp.replace(current)  # the service picks the new version up within a second
        return f"model v3 rolled out (feature shift {MODEL_VERSIONS['v3']['feature_shift']})"
    raise AiopsError(f"unknown fault {kind!r}; expected one of: {', '.join(FAULT_KINDS)}")
