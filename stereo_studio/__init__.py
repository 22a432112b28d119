"""Stereo Studio: distill-then-prune compression of real-time stereo networks, with a live studio."""

__version__ = "0.1.0"
