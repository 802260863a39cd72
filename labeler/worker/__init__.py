"""The worker: the one process that computes. Jobs (labeler.worker.jobs) carry retrains, queue refills and the
autoencoder to it through the task queue; the handlers train, score and write what the web then reads. The
in-memory simulation of the loop lives here too."""
