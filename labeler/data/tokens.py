"""Tokens of the JSON API (labeler.web.api): per user, each with scopes, shown once and kept only as a hash.

A token is PREFIX followed by 43 random URL-safe characters (256 bits). The store keeps its sha256 and its first
PREFIX_LENGTH characters (to tell tokens apart in lists); a presented token is found by the hash of what was
presented, so no stored secret is ever compared character by character. Scopes: "read" (datasets, labels,
items, jobs), "write" (push transactions), "admin" (granted only to admins, and working only while the user is
one). Creation and revocation are recorded in the audit log.
"""
import datetime
import hashlib
import hmac
import secrets

from labeler.data import audit
from labeler.store.db import ApiToken, User, utcnow, write_transaction

PREFIX = "lbl_"
PREFIX_LENGTH = 12  # what lists show: "lbl_" and 8 random characters
SCOPES = ("read", "write", "admin")
LAST_USED_EVERY = datetime.timedelta(minutes=1)  # last_used_at is written at most this often per token


class TokenError(ValueError):
    """A token could not be created or revoked; the message is one line saying why."""


def digest(token):
    """The sha256 hex digest under which ``token`` is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(user, name, scopes, actor=None):
    """Create a token ``name`` for ``user`` with ``scopes`` (a subset of SCOPES); ``actor`` (None for the command
    line) is recorded in the audit log as who created it. Returns (ApiToken, the token in clear: shown once, never
    stored). Raises TokenError for an empty or too long name, no scope, an unknown scope, the admin scope for a
    user who is not an admin, or a disabled user."""
    name = (name or "").strip()
    if not name:
        raise TokenError("the token's name is empty (say what it is for, e.g. 'case system')")
    if len(name) > ApiToken.name.max_length:
        raise TokenError(f"the token's name is longer than {ApiToken.name.max_length} characters")
    given = {str(scope).strip() for scope in scopes or ()}
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise TokenError(f"unknown scope(s) {', '.join(unknown)}: use {', '.join(SCOPES)}")
    if not given:
        raise TokenError(f"a token needs at least one scope ({', '.join(SCOPES)})")
    scopes = [scope for scope in SCOPES if scope in given]
    if "admin" in scopes and not user.is_admin:
        raise TokenError(f"only admins can hold the admin scope; {user.name!r} has role {user.role}")
    if user.disabled:
        raise TokenError(f"user {user.name!r} is disabled")
    clear = PREFIX + secrets.token_urlsafe(32)
    with write_transaction():
        token = ApiToken.create(user=user, name=name, token_hash=digest(clear), prefix=clear[:PREFIX_LENGTH],
                                scopes=scopes)
        audit.record(actor, audit.TOKEN_CREATED, token=token.prefix, name=name, owner=user.name, scopes=scopes)
    return token, clear


def tokens_of(user):
    """``user``'s tokens, newest first, revoked ones too."""
    return list(ApiToken.select().where(ApiToken.user == user).order_by(ApiToken.id.desc()))


def find_token(reference, user=None):
    """The token ``reference`` names: its id (digits) or its prefix as lists show it (of ``user``'s tokens when
    given). Raises TokenError when none or several match."""
    reference = str(reference or "").strip()
    if reference.isdigit():
        condition = ApiToken.id == int(reference)
    elif reference.startswith(PREFIX) and len(reference) >= PREFIX_LENGTH:
        condition = ApiToken.prefix == reference[:PREFIX_LENGTH]
    else:
        raise TokenError(f"{reference!r} names no token: give its id or its prefix ({PREFIX}...)")
    if user is not None:
        condition &= ApiToken.user == user
    found = list(ApiToken.select().where(condition).limit(2))
    if not found:
        raise TokenError(f"no token {reference!r}" + (f" of user {user.name!r}" if user is not None else ""))
    if len(found) > 1:
        raise TokenError(f"several tokens start with {reference!r}: revoke it by id")
    return found[0]


def revoke_token(reference, user=None, actor=None):
    """Revoke the token ``reference`` names (see find_token; only ``user``'s when given): it stops working at
    once. ``actor`` (None for the command line) is recorded in the audit log. Returns the ApiToken. Raises
    TokenError for an unknown token or one already revoked."""
    token = find_token(reference, user)
    with write_transaction():
        revoked = (ApiToken.update(revoked_at=utcnow())
                   .where((ApiToken.id == token.id) & ApiToken.revoked_at.is_null()).execute())
        if not revoked:
            raise TokenError(f"token {token.prefix} ({token.name!r}) was already revoked")
        audit.record(actor, audit.TOKEN_REVOKED, token=token.prefix, name=token.name, owner=token.user.name)
    return ApiToken.get_by_id(token.id)


def authenticate(presented):
    """The working ApiToken ``presented`` is (its ``user`` loaded), or None: unknown, revoked, or its user
    disabled. Writes last_used_at at most once per LAST_USED_EVERY."""
    if not isinstance(presented, str) or not presented.startswith(PREFIX) or len(presented) > 200:
        return None
    wanted = digest(presented)
    token = (ApiToken.select(ApiToken, User).join(User).where(ApiToken.token_hash == wanted).first())
    if token is None or not hmac.compare_digest(token.token_hash, wanted):
        return None
    if token.revoked_at is not None or token.user.disabled:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        with write_transaction():
            ApiToken.update(last_used_at=now).where(ApiToken.id == token.id).execute()
        token.last_used_at = now
    return token


def has_scope(token, scope):
    """Whether ``token`` may act in ``scope``: the scope is among its own, or it holds the admin scope (which
    allows everything) and its user is still an admin."""
    admin = "admin" in token.scopes and token.user.is_admin
    return admin or (scope != "admin" and scope in token.scopes)
