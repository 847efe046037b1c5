"""Broker backends: one interface, one registry keyed by broker class."""
