"""Samverkan: case coordination for SIG, Trefas and SSPF."""

__version__ = "0.1.0"
