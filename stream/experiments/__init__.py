"""Experiments: definitions (a TOML file), sticky assignment of users to variants, attribution of
events to the lists that were served, and the statistics of the report.

Import the submodules you need; this package imports nothing heavy itself.
"""
