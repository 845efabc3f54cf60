"""The `vigie demo` pieces: synthetic legacy patient API, local token issuer, demo policies."""
