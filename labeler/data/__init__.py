"""Datasets, their import and export, users, and agreement between analysts: queries and writes on the store."""
