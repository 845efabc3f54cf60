"""Least privilege from evidence: observe report-only traffic, suggest a policy from it.

`usage` records bounded shapes of what clients did (hooked once in proxy.py);
`evidence` reads the audit log (chain verified) and the usage log;
`suggest` turns that evidence into a least-privilege policy and its tests.
"""
