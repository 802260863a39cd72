"""The command line: ``python manage.py COMMAND``; every command and option has help. Commands run inside the app
built from the one configuration (labeler.config), so they share its store, task queue and model folder."""
from labeler.cli import autoencoder, commands, simulate, worker
from labeler.web import create_app


def create_cli_app():
    """The app with every command registered (manage.py's FlaskGroup builds it)."""
    app = create_app()
    register_commands(app)
    return app


def register_commands(app):
    """Add every command to ``app.cli``."""
    for module in (commands, worker, simulate, autoencoder):
        for command in module.COMMANDS:
            app.cli.add_command(command)
