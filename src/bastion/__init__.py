"""Bastion: a governance control plane for AI in production."""

__version__ = "0.1.0"
