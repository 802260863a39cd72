"""labeler's command line: python manage.py --help."""
import functools

import click
from flask.cli import FlaskGroup, ScriptInfo

from labeler.cli import create_cli_app


def _instance(ctx, param, folder):
    """--instance: build the commands' app on the store in ``folder`` (before any command loads the app)."""
    if folder:
        ctx.ensure_object(ScriptInfo).create_app = functools.partial(create_cli_app, folder)


@click.group(cls=FlaskGroup, create_app=create_cli_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
@click.option("--instance", type=click.Path(exists=True, file_okay=False), is_eager=True, expose_value=False,
              callback=_instance,
              help="An existing instance folder (the one `demo` prints) whose store, task queue and model files every "
                   "command uses, instead of LABELER_INSTANCE, LABELER_DATABASE, LABELER_QUEUE and LABELER_MODELS.")
def cli():
    """labeler: label card transactions with active learning."""


if __name__ == "__main__":
    cli()
