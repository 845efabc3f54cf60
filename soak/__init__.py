"""`make soak`: two Vigie replicas sharing Redis under mixed traffic while faults happen.

Not part of `make test` in its long form (30 minutes); tests/soak runs a short one.
Everything runs on loopback as separate processes so that each can be killed and
restarted: the legacy API (with a request log of its own), the token issuer, a
throwaway redis-server and two `vigie serve` replicas.
"""
