"""Homeport: a self-hosted home for SageMaker-style machine learning."""

__version__ = "0.1.0"
