"""Blueprints, one per area of the app."""
