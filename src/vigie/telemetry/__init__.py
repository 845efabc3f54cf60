"""Metrics and traces: what SOC teams see."""
