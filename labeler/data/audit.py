"""The audit log: who changed settings, exported labels, adjudicated a disagreement or managed users, and when.

Entries are appended in the caller's transaction where there is one, so an action and its entry land together.
"""
from peewee import JOIN

from labeler.store.db import AuditEntry, User

SETTINGS_CHANGED = "settings changed"
EXPORTED = "exported"
ADJUDICATED = "adjudicated"
IMPORTED = "imported"  # rows imported or pushed (the web upload, the API)
USER_CHANGED = "user changed"  # created, disabled, enabled, password reset, role changed
TOKEN_CREATED = "token created"
TOKEN_REVOKED = "token revoked"
ACTIONS = (SETTINGS_CHANGED, EXPORTED, ADJUDICATED, IMPORTED, USER_CHANGED, TOKEN_CREATED, TOKEN_REVOKED)
SHOWN = 200


def record(user, action, dataset=None, **details):
    """Append an entry: ``user`` (None for a command run on the server) did ``action`` on ``dataset``, with
    ``details`` (JSON values). Returns the AuditEntry. Raises ValueError for an unknown action."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r} (known: {', '.join(ACTIONS)})")
    return AuditEntry.create(user=user, action=action, dataset=dataset, details=details)


def entries(dataset=None, limit=SHOWN):
    """The newest ``limit`` entries, newest first (of ``dataset`` only when given), each with ``user_name``
    (None for the command line)."""
    query = AuditEntry.select(AuditEntry, User.name.alias("user_name")).join(
        User, on=(AuditEntry.user == User.id), join_type=JOIN.LEFT_OUTER)
    if dataset is not None:
        query = query.where(AuditEntry.dataset == dataset)
    return list(query.order_by(AuditEntry.id.desc()).limit(limit).objects())
