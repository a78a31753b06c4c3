"""The agent's own metrics, on a registry of its own (never the global one).

Names follow prometheus.io/docs/practices/naming: ``aiops_<what>_<unit>``, counters ``_total``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agent.detection.gauges import ScoreGauges
from agent.incidents.marks import IncidentMarks
from agent.report.gauges import IncidentFigures, LedgerFigures


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self._declare_cycle_metrics(r)
        self._declare_lease_metrics(r)
        # the HTTP server
        self.http_refused = Counter(
            "aiops_http_refused_total", "Requests refused and connections closed by the HTTP server's limits, by reason.",
            ["reason"], registry=r)
        self._declare_source_metrics(r)
        self._declare_detector_metrics(r)
        self._declare_rollout_metrics(r)
        self._declare_incident_metrics(r)
        self._declare_remediation_metrics(r)
        # detection: fits and scorings that failed for one subject (the others went on)
        self.detector_failures = Counter(
            "aiops_detector_failures_total", "Detector fits or scorings that failed for one subject, by detector "
            "and phase (fit, score).", ["detector", "phase"], registry=r)
        # retention
        self.retention_pruned = Counter(
            "aiops_retention_pruned_rows_total", "Rows deleted by retention, by table.", ["table"], registry=r)

    def _declare_cycle_metrics(self, r: CollectorRegistry) -> None:
        """Cycles and their stages."""
        self.cycle_duration = Histogram(
            "aiops_cycle_duration_seconds", "Duration of one collect-to-notify cycle.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=r)
        self.cycles = Counter("aiops_cycles_total", "Cycles started.", registry=r)
        self.cycles_failed = Counter("aiops_cycles_failed_total", "Cycles in which at least one stage failed.", registry=r)
        self.cycles_skipped = Counter(
            "aiops_cycles_skipped_total", "Cycles skipped because the previous one was still running.", registry=r)
        self.stage_failures = Counter("aiops_stage_failures_total", "Stage failures, by stage.", ["stage"], registry=r)
        self.stage_duration = Histogram(
            "aiops_stage_duration_seconds", "Duration of one stage.", ["stage"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120), registry=r)
        self.last_cycle = Gauge("aiops_last_cycle_timestamp_seconds", "End of the last finished cycle.", registry=r)
        self.config_reloads = Counter("aiops_config_reloads_total", "Config reloads, by outcome.", ["outcome"], registry=r)

    def _declare_lease_metrics(self, r: CollectorRegistry) -> None:
        """Leases: which agent works which shard, and which one leads (several agents on one store)."""
        self.lease_held = Gauge("aiops_lease_held", "1 while this agent holds the lease (shard:i/n, leader).",
                                ["lease"], registry=r)
        self.lease_failures = Counter("aiops_lease_failures_total", "Lease renewals the store refused to answer.",
                                      registry=r)
        self.lease_rounds_blocked = Counter(
            "aiops_lease_rounds_blocked_total", "Lease renewal rounds the store did not answer within a quarter "
            "interval (each counted at every renewal period it stays blocked).", registry=r)
        self.agent_info = Gauge("aiops_agent_info", "This agent process: its holder id in leases and its shard.",
                                ["holder", "shard"], registry=r)

    def _declare_source_metrics(self, r: CollectorRegistry) -> None:
        """Sources: what was collected and what was dropped or cut."""
        self.series_collected = Gauge("aiops_series_collected", "Series in the last collected frame.", registry=r)
        self.source_errors = Counter(
            "aiops_source_errors_total", "Failed fetches or scrapes, by source and kind of failure.",
            ["source", "kind"], registry=r)
        self.source_up = Gauge("aiops_source_up", "1 when the last fetch of a target succeeded.", ["source", "target"], registry=r)
        self.samples_dropped = Counter(
            "aiops_samples_dropped_total", "Samples dropped as unusable, by reason.", ["reason"], registry=r)
        self.label_values_cut = Counter(
            "aiops_label_values_cut_total", "Label values longer than 1024 characters, cut there and marked.",
            registry=r)
        self.names_cut = Counter(
            "aiops_names_cut_total", "Scraped metric and label names longer than 256 characters, cut there and "
            "marked.", registry=r)

    def _declare_detector_metrics(self, r: CollectorRegistry) -> None:
        """Detectors: what they scored, warmed up on, found and refitted, and the per-series gauges."""
        self.series_scored = Counter("aiops_series_scored_total", "Series scored by detectors.", registry=r)
        self.series_warming = Gauge(
            "aiops_series_warming", "Series a detector watches but cannot raise a hit on yet: not fitted (history "
            "shorter than its min_history), or scored but too little of their past known to tell how rare a point "
            "is, after the last cycle.", registry=r)
        self.hits = Counter("aiops_hits_total", "Anomalous points found, by detector.", ["detector"], registry=r)
        self.refits = Counter("aiops_detector_refits_total", "Detector refits, by detector.", ["detector"], registry=r)
        self.model_drift_rate = Gauge(
            "aiops_model_drift_rate_ratio", "Share of a model's features whose distribution drifted.", ["model"], registry=r)
        # per-series anomaly score, expected value and band (agent.detection.gauges)
        self.series_scores = ScoreGauges()
        r.register(self.series_scores)
        self.score_series_dropped = Counter(
            "aiops_score_series_dropped_total", "Scored series left out of the per-series gauges by "
            "detectors.gauges.max_series.", registry=r)

    def _declare_rollout_metrics(self, r: CollectorRegistry) -> None:
        """Model rollouts (agent.rollouts)."""
        self.rollouts_ended = Counter("aiops_rollouts_ended_total", "Guarded rollouts that ended, by model and outcome.",
                                      ["model", "outcome"], registry=r)
        self.rollout_measurements = Counter(
            "aiops_rollout_measurements_total", "Canary analysis measurements, by model and verdict.",
            ["model", "verdict"], registry=r)

    def _declare_incident_metrics(self, r: CollectorRegistry) -> None:
        """Incidents, alerts and notifications."""
        self.open_incidents = Gauge("aiops_open_incidents", "Incidents not yet resolved.", registry=r)
        # MTTR and MTTD of the last week, read from the store at each scrape (agent.report.gauges)
        self.incident_figures = IncidentFigures()
        r.register(self.incident_figures)
        # open and recent incidents' times, for dashboard annotations (agent.incidents.marks)
        self.incident_marks = IncidentMarks()
        r.register(self.incident_marks)
        self.incidents_opened = Counter("aiops_incidents_opened_total", "Incidents opened.", registry=r)
        self.alerts_ingested = Counter("aiops_alerts_ingested_total", "Alertmanager alerts accepted.", registry=r)
        self.alerts_truncated = Counter(
            "aiops_alerts_truncated_total", "Alerts Alertmanager said it left out of its webhooks (truncatedAlerts, "
            "from its max_alerts).", registry=r)
        self.notifications = Counter(
            "aiops_notifications_total", "Notification deliveries, by channel and outcome.", ["channel", "outcome"], registry=r)
        self.outbox_pending = Gauge("aiops_outbox_pending", "Notifications waiting for delivery.", registry=r)

    def _declare_remediation_metrics(self, r: CollectorRegistry) -> None:
        """Remediation runs, decisions and trust, and the ledger."""
        self.remediation_runs = Counter(
            "aiops_remediation_runs_total", "Remediation runs, by outcome.", ["outcome"], registry=r)
        self.remediation_record_retries = Counter(
            "aiops_remediation_record_retries_total", "Writes of a remediation run's outcome asked again because "
            "the store was away (a restart, a lock).", registry=r)
        self.remediation_decisions = Counter(
            "aiops_remediation_decisions_total", "Remediation decisions, by decision.", ["decision"], registry=r)
        self.trust_moves = Counter(
            "aiops_remediation_trust_moves_total", "Moves of rules with trust: earned, by rule and the mode moved "
            "to (auto, approve).", ["rule", "to"], registry=r)
        # the ledger of the last 30 days and each rule's mode, read from the store (agent.report.gauges)
        self.ledger_figures = LedgerFigures()
        r.register(self.ledger_figures)
