"""Incident response at the proxy: revoke tokens, contain clients, tell who saw what.

- `model`, `state`: revocations and containment switches, indexed for the request path;
- `steps`, `revocation`, `containment`: the two pipeline steps `proxy.py` calls;
- `stores`, `redis_store`, `registry`, `wiring`: where they live and how replicas agree;
- `admin_routes`, `cli`, `commands`: the admin API and `vigie revoke|contain|incident`;
- `timeline`: what a notification needs to say, from the audit log and security events.

Kept free of imports so that the command line starts fast.
"""
