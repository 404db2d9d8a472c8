"""robustdigits: train the classic MNIST networks, attack them, and see the result."""

__version__ = "0.1.0"
