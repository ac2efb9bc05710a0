"""mlorch: containerized benchmark orchestrator for MLPerf Inference."""

__version__ = "0.1.0"
