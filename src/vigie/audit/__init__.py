"""The tamper-evident audit log: one hash-chained JSON line per authenticated request.

`AuditLog` writes the lines (contract section 7), `verify` checks a chain,
`exposed` answers the breach-notification question "which patients did this
client see", and `main_verify` / `main_exposed` are the `vigie audit` commands.
The line format and the canonical bytes that are hashed live in `vigie.audit.line`.
"""

from vigie.audit.cli import main_exposed, main_verify
from vigie.audit.exposed import exposed
from vigie.audit.line import GENESIS, LINE_KEYS
from vigie.audit.log import AuditLog
from vigie.audit.verify import VerifyResult, verify

__all__ = [
    "GENESIS",
    "LINE_KEYS",
    "AuditLog",
    "VerifyResult",
    "exposed",
    "main_exposed",
    "main_verify",
    "verify",
]
