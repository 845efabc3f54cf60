"""The `vigie demo` pieces: synthetic legacy patient API, local token issuer, demo policies."""

from pathlib import Path

DEMO_POLICIES = Path(__file__).with_name("policies")
"""The folder of demo policies (gp-frontdesk, billing, research) and their policy tests."""
