"""The explorer: an interactive app over the model for Jupyter (``sim.explore()``)."""

from sim.explorer.app import Explorer, explore
from sim.explorer.settings import Settings

__all__ = ["Explorer", "Settings", "explore"]
