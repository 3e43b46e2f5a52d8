"""Feedback on answers and predictions, linked to request ids."""
