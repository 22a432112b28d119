"""Stereo Studio: distill-then-prune compression of real-time stereo networks, with a live studio."""

__version__ = "0.1.0"

import os as _os

# On a small shared CPU, OpenMP threads that spin while waiting steal the cores other work needs (measured:
# a training step cost 4x the CPU time). Passive waiting is the better default here; users can override it.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
