"""Evaluation metrics: exact optimal transport and mode coverage for the 2-D toy datasets."""
