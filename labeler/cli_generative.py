"""The ``generative`` command: fit the autoencoder on a dataset's pool and store its outputs, in this process."""
import sys

import click
from flask.cli import with_appcontext

from labeler import datasets as datasets_service
from labeler import generative
from labeler.db import Job, database


@click.command("generative")
@click.option("--dataset", required=True, help="Dataset whose pool the autoencoder is fitted on.")
@click.option("--projection", type=click.Choice(generative.PROJECTIONS), default=generative.DEFAULT_PROJECTION,
              show_default=True, help="How the latent map projects the encodings to 2-D.")
@click.option("--epochs", default=generative.EPOCHS, show_default=True, type=click.IntRange(min=1),
              help="Training epochs of the autoencoder.")
@click.option("--seed", default=0, show_default=True, help="Seed of the fit sample, the model and the map.")
@with_appcontext
def generative_command(dataset, projection, epochs, seed):
    """Fit the autoencoder on a dataset's pool and store every item's reconstruction and anomaly score and the
    latent map, for the labeling screen, the admin's map and the cold start. Runs here, not in the worker."""
    try:
        with database.connection_context():
            chosen = datasets_service.get_dataset(dataset)
            job, _ = generative.request_generative(chosen, "generative command", lambda dataset_id: None)
    except datasets_service.DatasetNotFound as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
    with database.connection_context():
        state = generative.run_job(job.id, projection=projection, epochs=epochs, seed=seed)
        job = Job.get_by_id(job.id)
        record = generative.artifacts_of(chosen)
    if state != "done":
        click.echo(f"Error: the autoencoder job {job.id} {state}: {job.error or job.stage}", err=True)
        sys.exit(1)
    click.echo(f"Autoencoder outputs of {dataset!r} stored: {record.pool_rows:,} items, latent map of "
               f"{record.details.get('map_points', 0):,} points ({generative.PROJECTION_NAMES[record.projection]}), "
               f"{record.seconds:.1f} s on {record.device}.")


COMMANDS = [generative_command]
