"""Event names, the audit recorder, and the structured issuance log.

Lifecycle events go to the database (``audit_events``) in the transaction that makes
the change. Issuance and refusals (see ``ledger``) go to the ``keyswap.issuance`` log as
one JSON line each — client, owner, outcome, reason, jti, source address — never a
secret or a token.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from .storage import add_audit_event

TOKEN_ISSUED = "token.issued"
TOKEN_DENIED = "token.denied"
REVOCATION_DENIED = "revocation.denied"
INTROSPECTION_DENIED = "introspection.denied"
TOKEN_REVOKED = "token.revoked"
TOKENS_REVOKED = "tokens.revoked"
TENANT_CREATED = "tenant.created"
TENANT_SUSPENDED = "tenant.suspended"
TENANT_ACTIVATED = "tenant.activated"
USER_CREATED = "user.created"
CLIENT_CREATED = "client.created"
CLIENT_DISABLED = "client.disabled"
CLIENT_ENABLED = "client.enabled"
SECRET_ROTATED = "client.secret_rotated"
KEY_CREATED = "key.created"
KEY_PUBLISHED = "key.published"
KEY_ROTATED = "key.rotated"
KEY_REVOKED = "key.revoked"
KEY_EXPEDITED = "key.expedited"
SCIM_CREDENTIAL_CREATED = "scim_credential.created"
SCIM_CREDENTIAL_ROTATED = "scim_credential.rotated"
SCIM_CREDENTIAL_REVOKED = "scim_credential.revoked"

issuance_log = logging.getLogger("keyswap.issuance")
#: One encoder for every line: ``json.dumps`` with options builds a new one per call.
_LINE = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def user_status_event(status: str) -> str:
    """Return the event name for a user's change to ``status`` (``user.deactivated``, ...)."""
    return f"user.{status}"


def record(
    session: Session,
    action: str,
    subject: str,
    *,
    actor: str,
    reason: str | None = None,
    **details: Any,
) -> None:
    """Add an audit event to ``session``'s transaction."""
    add_audit_event(
        session, actor=actor, action=action, subject=subject, reason=reason, details=details or None
    )


def log_issuance(event: str, /, **fields: Any) -> None:
    """Write one JSON line for an issuance or a refusal."""
    if issuance_log.isEnabledFor(logging.INFO):
        line = {"event": event, **{k: v for k, v in fields.items() if v is not None}}
        issuance_log.info(_LINE.encode(line))
