"""Policies: one client per file, default deny, field rules per route."""
