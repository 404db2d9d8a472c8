"""A device-resident MNIST loader in airbench's style.

The whole split lives as one normalized float tensor on the device; a batch is an
index slice of a permutation. No PIL, no per-sample transform, no DataLoader.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..errors import DataError
from .pixels import normalize


def check_images_and_labels(images: torch.Tensor, labels: torch.Tensor) -> None:
    """MNIST-shaped data: uint8 images (N, 28, 28) and integer labels 0..9, as many."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 3 \
            or tuple(images.shape[1:]) != (28, 28):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        dtype = getattr(images, "dtype", None)
        raise DataError(f"images must be a uint8 tensor (N, 28, 28), got {dtype} {shape}; "
                        "use robustdigits.datasets.load_mnist or torch.from_numpy of MNIST's uint8 pixels")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype.is_floating_point:
        raise DataError(f"labels must be an integer tensor (N,), got {getattr(labels, 'dtype', type(labels))}")
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise DataError(f"labels must be digits 0..9, got values in [{int(labels.min())}, {int(labels.max())}]")


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The permutation of epoch ``epoch`` depends only on (seed, epoch): resumable."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class TensorLoader:
    """Batches of (normalized images, labels) from one device tensor.

    ``shuffle=True`` draws a new permutation each epoch from ``(seed, epoch)``;
    ``shuffle=False`` keeps file order. The last batch may be smaller.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool,
        device: torch.device,
        seed: int = 0,
    ) -> None:
        check_images_and_labels(images, labels)
        self.images = normalize(images).to(device)
        self.labels = labels.to(device=device, dtype=torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.device = device

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=epoch_generator(self.seed, epoch)).to(self.device)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                yield self.images[idx], self.labels[idx]
        else:
            for start in range(0, n, self.batch_size):
                yield self.images[start : start + self.batch_size], self.labels[start : start + self.batch_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)
