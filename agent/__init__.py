"""aiops-agent: anomaly detection and verified auto-remediation for infrastructure and ML models."""

__version__ = "0.1.0"
