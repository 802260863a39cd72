"""The command line: ``python manage.py [--instance DIR] COMMAND``; every command and option has help. Commands
run inside the app built from the one configuration (labeler.config), so they share its store, task queue and model
folder; ``--instance DIR`` puts all three in the folder DIR (a demo's store, say)."""
from labeler.cli import autoencoder, commands, simulate, worker
from labeler.config import Config
from labeler.web import create_app


def create_cli_app(instance=None):
    """The app with every command registered (manage.py's FlaskGroup builds it), on the configuration of the
    instance folder ``instance`` when given (Config.in_folder), else of the LABELER_* variables."""
    app = create_app(Config.in_folder(instance).as_dict() if instance else None)
    register_commands(app)
    return app


def register_commands(app):
    """Add every command to ``app.cli``."""
    for module in (commands, worker, simulate, autoencoder):
        for command in module.COMMANDS:
            app.cli.add_command(command)
