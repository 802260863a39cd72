"""labeler's command line: python manage.py --help."""
import click
from flask.cli import FlaskGroup

from labeler.cli import create_cli_app


@click.group(cls=FlaskGroup, create_app=create_cli_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def cli():
    """labeler: label card transactions with active learning."""


if __name__ == "__main__":
    cli()
