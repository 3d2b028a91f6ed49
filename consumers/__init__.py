"""Readers of the recommendations, dead-letter and drift-alert topics."""
