"""Role checks shared by the blueprints."""
import functools

from flask import abort
from flask_login import current_user, login_required


def admin_required(view):
    """Let only logged-in admins through; others get 403."""

    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def reviewer_required(view):
    """Let only logged-in reviewers and admins through; others get 403."""

    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.can_review:
            abort(403)
        return view(*args, **kwargs)

    return wrapped
