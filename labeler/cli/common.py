"""What the commands share: the app's configuration, a dataset by name, a one-line error exit, and one line for a
full disk."""
import functools
import sys

import click
from flask import current_app

from labeler.data import datasets as datasets_service
from labeler.store.db import full_disk_error


def configuration():
    """The configuration of the app the command runs in (labeler.config.Config)."""
    return current_app.extensions["labeler.config"]


def dataset_named(name):
    """The dataset called ``name``; exits with one line that names the store looked in when there is none."""
    try:
        return datasets_service.get_dataset(name)
    except datasets_service.DatasetNotFound as error:
        fail(f"{error} in the store {configuration().DATABASE} (another store: python manage.py --instance DIR "
             f"..., or LABELER_INSTANCE)")


def fail(message):
    """Print one line on stderr and exit with status 1."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def stops_on_full_disk(command):
    """Decorate a command's function (innermost, below its options) so that a full disk ends it with one line
    and status 1 instead of a traceback. Each write of a command is one transaction, so the store is unchanged."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Exception as error:
            full = full_disk_error(error)
            if full is None:
                raise
            fail(f"the disk is full ({full}; the store is {configuration().DATABASE}): nothing was changed. "
                 f"Free some space and run the command again.")
    return run
