"""Users: creation with hashed passwords and a password policy, authentication with throttling, sessions that
can be revoked, roles.

Sessions live only in the signed cookie, so revoking one means the store must be able to say no: each user has a
``session_version``, the cookie carries the version it was issued under (``User.get_id``), and
:func:`session_user` refuses a cookie whose version is no longer the user's, or whose user is disabled. Logging
out, changing the password and disabling a user bump the version.
"""
import datetime
import functools
import math
import threading

from peewee import Case, IntegrityError, fn
from werkzeug.security import check_password_hash, generate_password_hash

from labeler.data import audit
from labeler.store.db import Label, LoginFailure, User, utcnow, write_transaction
from labeler.store.prepared import Prepared, slot

MIN_PASSWORD_LENGTH = 12

# Login throttling. After FAILURES_PER_NAME failed logins for one user name, or FAILURES_PER_ADDRESS from one
# client address, within FAILURE_WINDOW, further attempts for that name (from anywhere) or from that address
# (for any name) are refused until the oldest of those failures leaves the window, without checking the password:
# a refused attempt costs a count query, not a password hash. The address limit is higher because several
# analysts may share one address (an office's NAT).
FAILURE_WINDOW = datetime.timedelta(minutes=15)
FAILURES_PER_NAME = 5
FAILURES_PER_ADDRESS = 20

# A password hash costs hundreds of milliseconds of CPU. At most one runs at a time in this process, so that
# concurrent guessers (or a burst of logins) hold at most one core and the labeling requests keep the others;
# a login that cannot get its turn within HASH_WAIT_SECONDS is refused as busy instead of tying up a server
# thread longer.
HASH_WAIT_SECONDS = 10
_hashing = threading.BoundedSemaphore(1)

clock = utcnow  # the time of login attempts (UTC, naive); tests replace it


class UserError(ValueError):
    """A user could not be created or found; the message says why."""


class LoginRefused(Exception):
    """A login attempt was refused before its password was checked; the message says why and when to retry.

    ``retry_after`` is the number of seconds to wait (for the HTTP Retry-After header).
    """

    def __init__(self, message, retry_after):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


def _hash(function, *args):
    """Run a password hash or check, one at a time in this process (see HASH_WAIT_SECONDS)."""
    if not _hashing.acquire(timeout=HASH_WAIT_SECONDS):
        raise LoginRefused("The server is busy checking other logins; try again in a few seconds.", 5)
    try:
        return function(*args)
    finally:
        _hashing.release()


def check_password_policy(name, password):
    """Raise UserError (one line) unless ``password`` is acceptable for user ``name``: at least
    MIN_PASSWORD_LENGTH characters, not only whitespace, not only digits, not the user name."""
    password = password or ""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise UserError("password must not be only spaces")
    if password.strip().isdigit():
        raise UserError("password must not be only digits")
    if password.strip().casefold() == (name or "").strip().casefold():
        raise UserError("password must not be the user name")


def _record(by, user, change, **details):
    """Record ``change`` of ``user`` made by admin ``by`` in the audit log (nothing when ``by`` is None)."""
    if by is not None:
        audit.record(by, audit.USER_CHANGED, None, name=user.name, change=change, **details)


def create_user(name, password, role="analyst", by=None):
    """Create a user with a hashed password; with ``by`` (the admin who did it) the creation is recorded in the
    audit log in the same transaction (the password never is), as for every change below. Raises UserError for
    a bad role, a weak password (see check_password_policy) or a taken name."""
    name = (name or "").strip()
    if not name:
        raise UserError("user name is empty")
    if len(name) > User.name.max_length:
        raise UserError(f"user name is longer than {User.name.max_length} characters")
    if role not in User.ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(User.ROLES)}")
    check_password_policy(name, password)
    password_hash = generate_password_hash(password)
    try:
        with write_transaction():
            user = User.create(name=name, password_hash=password_hash, role=role)
            _record(by, user, "created", role=role)
            return user
    except IntegrityError:
        raise UserError(f"user {name!r} already exists") from None


def _existing(name):
    user = User.get_or_none(User.name == (name or "").strip())
    if user is None:
        raise UserError(f"no user {(name or '').strip()!r}")
    return user


def _bump(user, **changes):
    """Apply ``changes`` to ``user`` and bump its session version (every session issued before stops working)."""
    User.update(session_version=User.session_version + 1, **changes).where(User.id == user.id).execute()


def set_password(name, password, by=None):
    """Give user ``name`` a new password (policy checked) and revoke all of its sessions; ``by`` as for
    create_user. Raises UserError."""
    user = _existing(name)
    check_password_policy(user.name, password)
    password_hash = generate_password_hash(password)
    with write_transaction():
        _bump(user, password_hash=password_hash)
        _record(by, user, "password reset")
    return User.get_by_id(user.id)


def _keep_an_admin(user):
    """Raise UserError when ``user`` is the last enabled admin (disabling or demoting it would leave no admin)."""
    if user.role != "admin" or user.disabled:
        return
    others = User.select().where((User.role == "admin") & (User.disabled == False)  # noqa: E712 (SQL)
                                 & (User.id != user.id))
    if not others.exists():
        raise UserError(f"{user.name!r} is the last admin: make another user admin first")


def set_disabled(name, disabled=True, by=None):
    """Disable user ``name`` (it can no longer log in, and its sessions are revoked at once), or enable it again
    (``disabled=False``; it logs in anew); ``by`` as for create_user. Raises UserError for an unknown name, or
    for disabling the last enabled admin."""
    with write_transaction():
        user = _existing(name)
        if disabled:
            _keep_an_admin(user)
        _bump(user, disabled=bool(disabled))
        _record(by, user, "disabled" if disabled else "enabled")
    return User.get_by_id(user.id)


def set_role(name, role, by=None):
    """Give user ``name`` the role ``role`` (one of User.ROLES) and revoke its sessions (it logs in again with
    the new role; nothing happens when it has that role already); ``by`` as for create_user. Raises UserError
    for an unknown name or role, or for demoting the last enabled admin."""
    if role not in User.ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(User.ROLES)}")
    with write_transaction():
        user = _existing(name)
        if user.role == role:
            return user
        if role != "admin":
            _keep_an_admin(user)
        _bump(user, role=role)
        _record(by, user, "role changed", changes={"role": [user.role, role]})
    return User.get_by_id(user.id)


def user_rows():
    """Every user, by name, each with ``labels_given``: the labels it recorded (human and review decisions,
    less those it undid)."""
    given = dict(Label.select(Label.annotator, fn.SUM(Case(Label.kind, (("undo", -1),), 1)))
                 .where(Label.annotator.is_null(False) & Label.source.in_(("human", "review")))
                 .group_by(Label.annotator).tuples())
    users = list(User.select().order_by(fn.lower(User.name), User.name))
    for user in users:
        user.labels_given = int(given.get(user.id) or 0)
    return users


def end_sessions(user):
    """Revoke every session of ``user`` (logout). Sessions live in the cookie, so this ends the user's sessions
    in every browser, not only the one that logged out."""
    _bump(user)


_user_by_id = Prepared(User.select().where(User.id == slot("id")).limit(1))  # on every request


def session_user(session_id):
    """The user a session cookie's id ("id:version", User.get_id) stands for, or None when the session was
    revoked (older version), the user is disabled or gone, or the id is malformed (e.g. a cookie from before
    session versions, which carried the bare id)."""
    user_id, _, version = str(session_id or "").partition(":")
    if not (user_id.isdigit() and version.isdigit()):
        return None
    user = _user_by_id.first(id=int(user_id))
    if user is None or user.disabled or user.session_version != int(version):
        return None
    return user


@functools.cache
def _unknown_user_hash():
    """A hash to check passwords of unknown users against, so they take as long as wrong passwords."""
    return generate_password_hash("no such user")


def authenticate(name, password):
    """The user whose name and password match, or None (also for a disabled user). Not throttled: see login."""
    user = User.get_or_none(User.name == (name or "").strip())
    if user is None:
        _hash(check_password_hash, _unknown_user_hash(), password or "")
        return None
    matches = _hash(check_password_hash, user.password_hash, password or "")
    return user if matches and not user.disabled else None


def _retry_after(condition, limit, now):
    """Seconds until fewer than ``limit`` failures matching ``condition`` lie in the window, or 0."""
    since = now - FAILURE_WINDOW
    recent = (LoginFailure.select(LoginFailure.failed_at).where(condition, LoginFailure.failed_at > since)
              .order_by(LoginFailure.failed_at.desc()).limit(limit))
    times = [row.failed_at for row in recent]
    if len(times) < limit:
        return 0
    return (times[-1] + FAILURE_WINDOW - now).total_seconds()


def login(name, password, address, now=None):
    """Authenticate a login attempt from client ``address``, throttled per user name and per address.

    Returns the user, or None for a wrong name or password (the failure is recorded). Raises LoginRefused,
    without checking the password, when the name or the address has too many recent failures (see
    FAILURE_WINDOW), or when the server is too busy hashing. Failures are kept in the store (LoginFailure), so
    that every server process sharing it counts the same attempts; a successful login clears its name's.
    """
    now = now or clock()
    name = (name or "").strip()[:User.name.max_length]
    address = (address or "unknown")[:64]
    wait = max(_retry_after(fn.lower(LoginFailure.name) == name.lower(), FAILURES_PER_NAME, now),
               _retry_after(LoginFailure.address == address, FAILURES_PER_ADDRESS, now))
    if wait > 0:
        retry_at = (now + datetime.timedelta(seconds=math.ceil(wait))).replace(microsecond=0)
        raise LoginRefused(f"Too many failed logins for this user or from this address; try again after "
                           f"{retry_at:%H:%M:%S} UTC (in {math.ceil(wait / 60)} min).", wait)
    user = authenticate(name, password)
    with write_transaction():
        if user is None:
            LoginFailure.delete().where(LoginFailure.failed_at <= now - FAILURE_WINDOW).execute()
            LoginFailure.create(name=name, address=address, failed_at=now)
        else:
            LoginFailure.delete().where(fn.lower(LoginFailure.name) == name.lower()).execute()
    return user
