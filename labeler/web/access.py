"""Role checks and lookups shared by the blueprints."""
import functools

from flask import abort
from flask_login import current_user, login_required

from labeler.data import datasets as datasets_service


def _allowing(may):
    """A view decorator that lets through logged-in users for whom ``may(user)`` holds; others get 403."""

    def decorator(view):
        @functools.wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not may(current_user):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


admin_required = _allowing(lambda user: user.is_admin)  # admins only
reviewer_required = _allowing(lambda user: user.can_review)  # reviewers and admins


def dataset_or_404(name):
    """The dataset called ``name``; aborts with 404 when there is none."""
    try:
        return datasets_service.get_dataset(name)
    except datasets_service.DatasetNotFound:
        abort(404)
