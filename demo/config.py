"""The agent config for the demo stack: Prometheus as the source, detectors for the model
service, one incident per job and model, and remediation rules that restart the service, roll
the model back or free its scratch dir."""

from __future__ import annotations

import sys
from pathlib import Path

from demo.stack import REPO, SERVICE_JOB, StackInfo, service_command


def demo_config(info: StackInfo, *, cycle_s: float, verify_s: float, verify_deadline_s: float, state_dir: Path,
                history_step_s: float, drift_window_s: float = 60.0, flap_window_s: float = 60.0,
                shadow: bool = False, runs_per_hour: int = 20, analysis_interval_s: float = 10.0,
                analysis_duration_s: float = 40.0, retrain_on_drift: bool = False) -> str:
    """``history_step_s`` is the backfilled history's resolution: rate windows span three of its
    steps so they hold samples in the past as well as live. ``runs_per_hour`` is the rate limit
    (half of it per target): the benchmark, which injects a fault every two minutes, raises it.
    The model ``fraud`` is analysed every ``analysis_interval_s`` for ``analysis_duration_s`` when
    rolled out; ``retrain_on_drift`` retrains it once a drift incident is resolved."""
    root = Path(info.root)
    step = f"{info.scrape_interval_s:g}s"
    window = f"{3 * history_step_s:g}s"
    # restart_service.yml appends the pidfile to the argv: the command ends with --pid-file
    argv = "[" + ", ".join(f'"{a}"' for a in service_command(root, info.service_port)[:-1]) + "]"
    job = f'job="{SERVICE_JOB}"'
    trainer = "[" + ", ".join(f'"{a}"' for a in (sys.executable, "-m", "demo.train")) + "]"
    return f"""\
agent:
  state_dir: {state_dir}
  interval: {cycle_s:g}s
  log_level: info
  unhealthy_after: 5
http:
  listen: 127.0.0.1
  port: {info.agent_port}
  token: ${{AIOPS_API_TOKEN:-}}
sources:
  kind: prometheus
  window: 3m
  prometheus:
    url: {info.prometheus_url}
    timeout: 5s
    retries: 1
    step: {step}
    queries:
      - name: latency_p95
        expr: histogram_quantile(0.95, sum by (job, model, le) (rate(demo_inference_latency_seconds_bucket{{{job}}}[{window}])))
        kind: quantile
      - name: error_rate
        expr: sum by (job, model) (rate(demo_inference_errors_total{{{job}}}[{window}])) / sum by (job, model) (rate(demo_inference_requests_total{{{job}}}[{window}]))
        kind: rate
      - name: up
        expr: up{{{job}}}
      - name: memory
        expr: process_resident_memory_bytes{{{job}}}
      - name: memory_growth
        expr: deriv(process_resident_memory_bytes{{{job}}}[{window}])
      - name: scratch
        expr: demo_scratch_bytes{{{job}}}
      - name: demo_input_feature
        expr: sum by (job, model, feature, le) (increase(demo_input_feature_bucket{{{job}}}[{window}]))
        kind: bucket
      - name: demo_prediction_score
        expr: sum by (job, model, le) (increase(demo_prediction_score_bucket{{{job}}}[{window}]))
        kind: bucket
detectors:
  refit:
    interval: 1h
    step: {history_step_s:g}s
    history: 3d
    min_history: 1h
    min_points: 30
  rules:
    - kind: seasonal
      name: seasonal
      match:
        - metric: "latency_p95|error_rate"
          kinds: [gauge, rate, quantile]
      params:
        direction: up
        threshold: 6.0
        min_rel_dev: 0.5
        # at 20 requests a second, a 30 s error rate wobbles by about half a point
        min_abs_dev: 0.02
    - kind: threshold
      name: down
      match:
        - metric: up
      min_history: 0s
      params:
        lower: 0.5
    - kind: threshold
      name: memory
      match:
        - metric: process_resident_memory_bytes
      min_history: 0s
      params:
        upper: 300000000
        for_points: 2
        of_points: 3
    - kind: threshold
      name: memory_leak
      match:
        - metric: memory_growth
      min_history: 0s
      params:
        # bytes a second, over the rate window: a leak, long before the process hits its limit
        upper: 3000000
        for_points: 2
        of_points: 3
    - kind: threshold
      name: scratch_full
      match:
        - metric: demo_scratch_bytes
      min_history: 0s
      params:
        upper: 20000000
  slos:
    - name: latency_slo
      match:
        - metric: latency_p95
          kinds: [quantile]
      objective: 0.3
      direction: above
      points: 2
      window: 3
  drift:
    - name: fraud
      label: model
      feature_label: feature
      features: [demo_input_feature]
      predictions: [demo_prediction_score]
      window: {drift_window_s:g}s
      share: 0.5
incidents:
  window: 10m
  correlation_labels: [job, model]
  quiet_cycles: 2
  flap_window: {flap_window_s:g}s
  changes_lookback: 2h
remediation:
  shadow: {str(shadow).lower()}
  playbook_dir: {REPO / "playbooks"}
  timeout: 2m
  check_timeout: 1m
  limits:
    max_runs_per_hour: {runs_per_hour}
    max_runs_per_target_per_hour: {runs_per_hour // 2}
    cooldown: 0s
    concurrency: 1
    breaker_failures: 3
    breaker_reset: 10m
  verify:
    period: {verify_s:g}s
    deadline: {verify_deadline_s:g}s
  rules:
    - name: rollback-model
      match:
        detector: drift
      playbook: rollback_model.yml
      mode: auto
      vars:
        models_dir: {root / "models"}
        model_name: fraud
    - name: free-scratch
      match:
        detector: scratch_full
      playbook: free_disk.yml
      mode: auto
      vars:
        cleanup_path: {root / "scratch"}
        cleanup_patterns: ["spool-*.dat"]
        cleanup_action: delete
        older_than: 1d
    - name: restart-model-service
      match:
        labels: {{job: {SERVICE_JOB}}}
      playbook: restart_service.yml
      mode: auto
      # Playbooks get a scrubbed environment: the restarted service finds the demo's code as
      # the stack started it, through PYTHONPATH given on purpose.
      env: {{PYTHONPATH: "{REPO}"}}
      vars:
        service_name: demo-model
        service_pidfile: {root / "service.pid"}
        service_start_argv: {argv}
models:
  - name: fraud
    rollout_playbook: rollout_model.yml
    promote_playbook: promote_model.yml
    rollback_playbook: rollback_model.yml
    on_failure: auto
    env: {{PYTHONPATH: "{REPO}"}}
    vars:
      models_dir: {root / "models"}
      trainer_argv: {trainer}
    # What serves is what models/current points at: the registry follows it every cycle.
    serving:
      link: {root / "models" / "current"}
      versions: {root / "models" / "versions"}
    timeout: 2m
    analysis:
      interval: {analysis_interval_s:g}s
      duration: {analysis_duration_s:g}s
      failure_limit: 2
      metrics:
        - name: latency_p95
          query: histogram_quantile(0.95, sum by (le) (rate(demo_inference_latency_seconds_bucket{{{job}}}[{{window}}])))
          success: "< 0.2"
          failure: ">= 0.3"
        - name: error_rate
          query: sum(rate(demo_inference_errors_total{{{job}}}[{{window}}])) / sum(rate(demo_inference_requests_total{{{job}}}[{{window}}]))
          success: "< 0.03"
          failure: ">= 0.1"
        - name: drift_rate
          query: max(aiops_model_drift_rate_ratio{{model="fraud"}})
          success: "< 0.5"
          failure: ">= 0.5"
        - name: prediction_shift
          kind: distribution
          query: sum by (le) (increase(demo_prediction_score_bucket{{{job}}}[{{window}}]))
          # The first rounds of a fast demo see a few seconds of traffic. Bias-corrected PSI of
          # one distribution against a 240-prediction reference (300 draws): at 50 predictions
          # mean 0.10, 99th percentile 0.54; at 240, 0.03 and 0.16. v3's shifted scores: about 12.
          success: "< 0.6"
          failure: ">= 1.5"
    retrain:
      playbook: retrain_model.yml
      on_drift: {str(retrain_on_drift).lower()}
      gate: {{metric: auc, max_drop: 0.01}}
      max_per_period: 3
      period: 1d
      timeout: 2m
"""

