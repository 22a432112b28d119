"""Stereo Studio: distill-then-prune compression of real-time stereo networks, with a live studio."""

__version__ = "0.1.0"

from stereo_studio import runtime as _runtime

# OpenMP reads OMP_WAIT_POLICY once, when torch loads it: take this machine's measured choice from the runtime
# cache now, if there is one (a value already in the environment wins). No unconditional default: PASSIVE made
# inference 2.5x slower on one machine. The CLI measures on first use (`runtime.prepare_process`), and
# gives training commands PASSIVE.
_runtime.apply_cached_wait_policy()
