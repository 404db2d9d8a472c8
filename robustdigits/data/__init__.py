"""MNIST as tensors: the embedded subset, IDX files, the verified full-MNIST cache (``fetch``),
the device-resident batch loader and the one uint8 → [0, 1] → normalized pixel conversion."""
