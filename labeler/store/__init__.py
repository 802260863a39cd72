"""The store: the peewee database and its tables, schema migrations, the pool as numpy arrays, files written
atomically with digests, and lookups of what the worker stored (serving scores, autoencoder outputs, feature
statistics). Imports nothing of labeler but the configuration; every other layer builds on it."""
