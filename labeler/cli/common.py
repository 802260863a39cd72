"""What the commands share: the app's configuration and a one-line error exit."""
import sys

import click
from flask import current_app


def configuration():
    """The configuration of the app the command runs in (labeler.config.Config)."""
    return current_app.extensions["labeler.config"]


def fail(message):
    """Print one line on stderr and exit with status 1."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)
