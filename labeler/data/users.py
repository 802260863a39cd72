"""Users: creation with hashed passwords, authentication, roles."""
import functools

from peewee import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from labeler.store.db import User, database


class UserError(ValueError):
    """A user could not be created or found; the message says why."""


def create_user(name, password, role="analyst"):
    """Create a user with a hashed password. Raises UserError for a bad role, a short password or a taken name."""
    name = (name or "").strip()
    if not name:
        raise UserError("user name is empty")
    if len(name) > User.name.max_length:
        raise UserError(f"user name is longer than {User.name.max_length} characters")
    if role not in User.ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(User.ROLES)}")
    if len(password or "") < 8:
        raise UserError("password must have at least 8 characters")
    try:
        with database.atomic():
            return User.create(name=name, password_hash=generate_password_hash(password), role=role)
    except IntegrityError:
        raise UserError(f"user {name!r} already exists") from None


@functools.cache
def _unknown_user_hash():
    """A hash to check passwords of unknown users against, so they take as long as wrong passwords."""
    return generate_password_hash("no such user")


def authenticate(name, password):
    """The user whose name and password match, or None."""
    user = User.get_or_none(User.name == (name or "").strip())
    if user is None:
        check_password_hash(_unknown_user_hash(), password or "")
        return None
    return user if check_password_hash(user.password_hash, password or "") else None
