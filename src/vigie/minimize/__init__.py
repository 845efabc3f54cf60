"""Data minimization: field actions per policy, and NIR masking everywhere.

The proxy calls `Minimizer.minimize` once per upstream response.
"""

from vigie.minimize.minimizer import Minimizer

__all__ = ["Minimizer"]
