"""Helpers for development, tests and the demo; not part of the installed package."""
