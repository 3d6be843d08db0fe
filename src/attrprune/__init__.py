"""Attribution-guided pruning benchmark suite."""

__version__ = "0.1.0"
