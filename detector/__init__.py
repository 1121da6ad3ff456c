"""Detect cryptocurrency-mining traffic leaving container hosts."""

__version__ = "0.1.0"
