"""Random indices for policies' hot paths, drawn from a generator in blocks.

A numpy ``Generator.integers`` call costs about 2 microseconds, most of it the call
itself; a work-stealing thief draws a victim on every steal. :class:`IndexDraws` takes
``BLOCK`` uniforms per numpy call and turns each into an index, about 0.4 microseconds a
draw. The draws are a fixed function of the generator, so a seeded run repeats exactly.
"""

from __future__ import annotations

import numpy as np

#: Uniforms fetched per numpy call.
BLOCK = 256


class IndexDraws:
    """Uniform random indices ``0 <= i < n`` from ``rng``, ``BLOCK`` uniforms at a time."""

    __slots__ = ("_block", "_rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._block: list[float] = []

    def below(self, n: int) -> int:
        """A uniform index in ``range(n)`` (``n >= 1``)."""
        block = self._block
        if not block:
            block = self._block = self._rng.random(BLOCK).tolist()
        # min(): a uniform just below 1 times n can round up to n itself.
        return min(int(block.pop() * n), n - 1)
