"""Running cells: one attack on one model over one image selection, here or on a Ray cluster.

:func:`run_cell` computes a cell (a pure function of its spec, the test split and the
model). :func:`run_grid` runs the cells a store does not hold yet, with the ``local``
executor (one after another in this process) or the ``ray`` executor (each cell a Ray
task with ``num_cpus=1``, or ``num_gpus=1`` on CUDA; a task lost with its worker is
retried by Ray up to 3 times; only this process writes the store, one cell at a time,
so a cell is never written twice). Ray is an optional extra: ``pip install -e '.[ray]'``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.attacks.evasion import CarliniL2Method, DeepFool, FastGradientMethod, ProjectedGradientDescent

from ..art_bridge import make_classifier
from ..attacks.regularized_gd import RegularizedGradientDescent
from ..checkpoints import load_checkpoint
from ..checks import unknown
from ..data.datasets import proportional_counts
from ..data.pixels import MNIST_MEAN, MNIST_STD, to_pixels
from ..errors import ConfigError
from ..report.tables import machine_info
from ..scoring import is_adversarial, perturbation_norms
from ..targets import target_classes
from .cells import CellResult, CellSpec, CellStore

EXECUTORS = ("local", "ray")
RAY_HINT = "--executor ray needs Ray, an optional extra: pip install -e '.[ray]' (or pip install ray)"
Done = Callable[[CellSpec, bool], None]  # called per cell: (spec, computed now rather than reused)


def stratified_subset(labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` images holding every class in proportion (largest remainder),
    each class's first images, in their original order."""
    classes, counts = np.unique(labels, return_counts=True)
    take = proportional_counts(counts, k)
    chosen = [np.flatnonzero(labels == c)[:t] for c, t in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def select_indices(selection: str, labels: np.ndarray) -> np.ndarray:
    """``first:N`` (the first N test images) or ``stratified:K:N`` (K of the first N)."""
    kind, *numbers = selection.split(":")
    if kind == "first" and len(numbers) == 1:
        return np.arange(min(int(numbers[0]), len(labels)))
    if kind == "stratified" and len(numbers) == 2:
        n = min(int(numbers[1]), len(labels))
        return stratified_subset(labels[:n], min(int(numbers[0]), n))
    raise ConfigError(f"unknown image selection {selection!r}; use first:N or stratified:K:N")


def build_attack(name: str, p: dict[str, Any], classifier: Any) -> Any:
    """The attack of a cell, from its settings ``p``."""
    targeted, bs = p["targeted"], p["batch_size"]
    if name == "rgd":
        return RegularizedGradientDescent.from_normalized(
            classifier, mean=MNIST_MEAN, std=MNIST_STD, learning_rate=p["eta"], penalty=p["lam"],
            max_iter=p["steps"], init="reference", early_stop=p["early_stop"], keep_best=p["keep_best"],
            targeted=targeted, batch_size=bs)
    if name == "fgsm":
        return FastGradientMethod(classifier, eps=p["eps"], targeted=targeted, batch_size=bs)
    if name == "pgd":
        return ProjectedGradientDescent(classifier, eps=p["eps"], eps_step=p["eps_step"], max_iter=p["steps"],
                                        num_random_init=p["restarts"], targeted=targeted, batch_size=bs,
                                        verbose=False)
    if name == "cw":
        return CarliniL2Method(classifier, targeted=targeted, max_iter=p["steps"], binary_search_steps=p["search"],
                               initial_const=p["const"], learning_rate=p["learning_rate"], max_halving=2,
                               max_doubling=2, batch_size=bs, verbose=False)
    if name == "deepfool":
        return DeepFool(classifier, max_iter=p["steps"], batch_size=bs, verbose=False)
    raise ConfigError(f"unknown attack {name!r} in a cell; choose from: clean, rgd, fgsm, pgd, cw, deepfool")


def run_cell(spec: CellSpec, images: np.ndarray, labels: np.ndarray, model: torch.nn.Module, *,
             device: torch.device) -> CellResult:
    """The cell's attack on ``model`` over its selection of the test split (``images``
    uint8 (N, 28, 28), ``labels`` (N,)). Attack ``clean`` attacks nothing."""
    p = spec.params
    if p.get("seed") is not None:
        torch.manual_seed(p["seed"])  # attacks with random starts (PGD restarts) are reproducible
        np.random.seed(p["seed"])
    classifier = make_classifier(model, device)
    index = select_indices(spec.selection, labels)
    x, y = to_pixels(images[index]), np.asarray(labels[index], dtype=np.int64)
    bs = p.get("batch_size", 128)
    logits = classifier.predict(x, batch_size=bs)
    targeted = bool(p.get("targeted", False))
    targets = target_classes(p["target"], y, logits, seed=p["seed"]) if targeted else np.full(len(y), -1)
    steps = np.full(len(y), -1, dtype=np.int64)
    start = time.perf_counter()
    if spec.attack == "clean":
        x_adv = x
    else:
        attack = build_attack(spec.attack, p, classifier)
        x_adv = attack.generate(x, targets if targeted else y)
        if spec.attack == "rgd":
            steps = attack.steps_used_
    seconds = time.perf_counter() - start
    adv_pred = classifier.predict(x_adv, batch_size=bs).argmax(1)
    l2, linf = perturbation_norms(x, x_adv)
    samples = {"index": index, "label": y, "target": targets, "clean_pred": logits.argmax(1), "adv_pred": adv_pred,
               "success": is_adversarial(adv_pred, y, targets if targeted else None), "l2": l2, "linf": linf,
               "steps": steps, "x_adv": x_adv}
    return CellResult(spec, samples, seconds, machine_info(device))


def run_grid(
    specs: Sequence[CellSpec],
    store: CellStore,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    device: torch.device,
    executor: str = "local",
    address: str | None = None,
    fresh: bool = False,
    done: Done | None = None,
) -> list[CellResult]:
    """Every cell's result, in the order of ``specs``: finished cells are read from
    ``store``, the others computed (``fresh``: all of them) and saved as each finishes,
    so an interrupted grid resumes with only the cells it had not finished."""
    if executor not in EXECUTORS:
        raise unknown("executor", executor, EXECUTORS)
    unique = list({s.key: s for s in specs}.values())
    pending = [s for s in unique if fresh or not store.has(s)]
    for spec in unique:
        if spec not in pending and done:
            done(spec, False)
    if pending and executor == "local":
        _run_local(pending, store, images, labels, device=device, fresh=fresh, done=done)
    elif pending:
        _run_ray(pending, store, images, labels, device=device, address=address, fresh=fresh, done=done)
    return [store.load(s) for s in specs]


def _run_local(pending: Sequence[CellSpec], store: CellStore, images: np.ndarray, labels: np.ndarray, *,
               device: torch.device, fresh: bool, done: Done | None) -> None:
    models: dict[str, torch.nn.Module] = {}
    for spec in pending:
        if spec.model_sha256 not in models:
            models[spec.model_sha256] = load_checkpoint(spec.checkpoint).build_model(device)
        store.save(run_cell(spec, images, labels, models[spec.model_sha256], device=device), replace=fresh)
        if done:
            done(spec, True)


def _ray_cell(spec: dict[str, Any], data: tuple[np.ndarray, np.ndarray], checkpoint: bytes,
              device: str) -> CellResult:
    """One cell in a Ray worker: the checkpoint travels as bytes, so workers on other
    machines need neither the file nor the data cache."""
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        path.write_bytes(checkpoint)
        dev = torch.device(device)
        model = load_checkpoint(path).build_model(dev)
    return run_cell(CellSpec.from_dict(spec), data[0], data[1], model, device=dev)


def _run_ray(pending: Sequence[CellSpec], store: CellStore, images: np.ndarray, labels: np.ndarray, *,
             device: torch.device, address: str | None, fresh: bool, done: Done | None) -> None:
    try:
        import ray
    except ImportError as e:
        raise ConfigError(RAY_HINT) from e
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    gpu = device.type == "cuda"
    task = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=3)(_ray_cell)
    data = ray.put((np.ascontiguousarray(images), np.ascontiguousarray(labels)))
    weights = {s.model_sha256: ray.put(Path(s.checkpoint).read_bytes()) for s in pending}
    futures = {task.remote(s.to_dict(), data, weights[s.model_sha256], str(device)): s for s in pending}
    try:
        while futures:
            ready, _ = ray.wait(list(futures), num_returns=1)
            spec = futures.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:  # the worker's own exception, one line at the CLI
                raise e.as_instanceof_cause() from None
            store.save(result, replace=fresh)
            if done:
                done(spec, True)
    finally:
        for future in futures:
            ray.cancel(future, force=True)
