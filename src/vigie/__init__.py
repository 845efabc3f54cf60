"""Vigie: a data-minimization proxy for patient-management APIs."""

__version__ = "0.1.0"
