"""Attack cells: one attack on one model over one image selection.

:func:`run_cell` computes a cell (a pure function of its spec, the test split and the
model). :func:`run_grid` runs the cells a store does not hold yet through an executor
(:mod:`.executor`: here, in ``--jobs`` local workers, or as Ray tasks; a Ray task lost
with its worker is retried up to 3 times); only this process writes the store, one cell
at a time, so a cell is never written twice. Ray is an optional extra: ``pip install -e '.[ray]'``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from art.attacks.evasion import CarliniL2Method, DeepFool, FastGradientMethod, ProjectedGradientDescent

from ..art_bridge import make_classifier
from ..attacks.linf import pgd
from ..attacks.regularized_gd import RegularizedGradientDescent
from ..checkpoints import load_checkpoint
from ..data.datasets import MNISTData, proportional_counts
from ..data.pixels import MNIST_MEAN, MNIST_STD, PixelInput, to_pixels
from ..errors import ConfigError
from ..report.tables import machine_info
from ..scoring import is_adversarial, perturbation_norms
from ..targets import target_classes
from .cells import CellResult, CellSpec, CellStore
from .executor import EXECUTORS, RAY_HINT, Task, check_jobs, context, run_tasks, workers_for
from .minimum_norm import MIN_NORM_ATTACKS, minimum_norm

__all__ = ["EXECUTORS", "RAY_HINT", "attack_task", "autoattack", "autoattack_class", "build_autoattack", "compute_cell",
           "random_stratified", "run_cell", "run_grid", "select_indices"]
Done = Callable[[CellSpec, bool], None]  # called per cell: (spec, computed now rather than reused)


def stratified_subset(labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` images holding every class in proportion (largest remainder),
    each class's first images, in their original order."""
    classes, counts = np.unique(labels, return_counts=True)
    take = proportional_counts(counts, k)
    chosen = [np.flatnonzero(labels == c)[:t] for c, t in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def random_stratified(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A seeded random ``k`` of ``labels``' images, each digit in proportion to its share
    (largest remainder), sorted: the same images for every model given the same seed."""
    labels = np.asarray(labels)
    if k > len(labels):
        raise ConfigError(f"images must be at most the {len(labels):,} test images, got {k:,}")
    rng = np.random.default_rng(seed)
    counts = proportional_counts(np.bincount(labels, minlength=10), k)
    chosen = [rng.choice(np.flatnonzero(labels == d), size=c, replace=False) for d, c in enumerate(counts)]
    return np.sort(np.concatenate(chosen))


def select_indices(selection: str, labels: np.ndarray) -> np.ndarray:
    """``first:N`` (the first N test images), ``stratified:K:N`` (K of the first N, each
    class's first), ``random:K:SEED`` (a seeded random K of the whole split, stratified), or
    ``BASE/stratified:K`` (K of BASE's images, every class in proportion, each class's first)."""
    if "/" in selection:
        base, sub = selection.split("/", 1)
        kind, *numbers = sub.split(":")
        if kind != "stratified" or len(numbers) != 1:
            raise ConfigError(f"unknown image selection {selection!r}; a subset is BASE/stratified:K")
        index = select_indices(base, labels)
        return index[stratified_subset(labels[index], min(int(numbers[0]), len(index)))]
    kind, *numbers = selection.split(":")
    if kind == "first" and len(numbers) == 1:
        return np.arange(min(int(numbers[0]), len(labels)))
    if kind == "stratified" and len(numbers) == 2:
        n = min(int(numbers[1]), len(labels))
        return stratified_subset(labels[:n], min(int(numbers[0]), n))
    if kind == "random" and len(numbers) == 2:
        return random_stratified(labels, min(int(numbers[0]), len(labels)), int(numbers[1]))
    raise ConfigError(f"unknown image selection {selection!r}; use first:N, stratified:K:N or random:K:SEED")


AUTOATTACK_INSTALL = "pip install 'robustdigits[robust]' (PyPI pyautoattack 0.2.0, the AutoAttack authors' code)"
AUTOATTACK_VERSIONS: dict[str, list[str] | None] = {"standard": None, "apgd": ["apgd-ce", "apgd-t"],
                                                     "square": ["square"]}
# The apgd version: pyautoattack's own settings outside the standard version, pinned here so a
# new release cannot change what a stored cell means: APGD-CE from 5 random starts (the
# standard version runs 1), APGD-T on the 9 other classes, 100 iterations each.
APGD_CE_RESTARTS, APGD_T_TARGETS = 5, 9


def autoattack_class() -> Any:
    """pyautoattack's ``AutoAttack``, or one line saying how to install it."""
    try:
        from pyautoattack import AutoAttack
    except ImportError as e:
        raise ConfigError(f"AutoAttack needs the pyautoattack package, which is not installed: "
                          f"{AUTOATTACK_INSTALL}") from e
    return AutoAttack


def build_autoattack(net: torch.nn.Module, eps: float, version: str, *, device: torch.device, seed: int) -> Any:
    """pyautoattack's ``AutoAttack`` on ``net`` (pixels in [0, 1]) at L∞ ``eps``: the
    standard version, or its ``apgd`` (APGD-CE from 5 starts + APGD-T on 9 targets) or ``square``
    part alone; silent."""
    auto_attack = autoattack_class()
    chosen = AUTOATTACK_VERSIONS[version]
    if chosen is None:
        aa = auto_attack(net, eps=eps, norm="Linf", version="standard", device=device, seed=seed)
    else:
        aa = auto_attack(net, attacks=chosen, eps=eps, norm="Linf", version="custom", device=device, seed=seed)
        aa.apgd.n_restarts, aa.apgd_targeted.n_target_classes = APGD_CE_RESTARTS, APGD_T_TARGETS
    aa.verbose = False
    return aa


def autoattack(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, p: dict[str, Any], *,
               device: torch.device) -> np.ndarray:
    """AutoAttack (``p["version"]``: standard, apgd or square) at L∞ ``p["eps"]`` on pixels
    ``x`` in [0, 1] against ``model`` (normalized input: the normalization is put inside),
    torch-native on ``device``: the adversarial pixels (the clean ones where it gave up)."""
    aa = build_autoattack(PixelInput(model).to(device).eval(), p["eps"], p["version"], device=device, seed=p["seed"])
    x_adv, _ = aa.run_standard_evaluation(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device),
                                          batch_size=p["batch_size"])
    return x_adv.detach().cpu().numpy().astype(np.float32)


def torch_pgd(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, p: dict[str, Any], *,
              device: torch.device) -> np.ndarray:
    """Torch-native PGD (:func:`robustdigits.attacks.linf.pgd`: ``p["steps"]`` steps of
    ``p["eps_step"]`` from ``p["restarts"]`` random starts, a restart only on the images no
    earlier one fooled) at L∞ ``p["eps"]`` on pixels ``x``, in batches on ``device``."""
    net = PixelInput(model).to(device).eval()
    out = []
    for i in range(0, len(x), p["batch_size"]):
        xb = torch.from_numpy(x[i:i + p["batch_size"]]).to(device)
        yb = torch.from_numpy(y[i:i + p["batch_size"]]).to(device)
        out.append(pgd(net, xb, yb, p["eps"], steps=p["steps"], alpha=p["eps_step"], restarts=p["restarts"]))
    return torch.cat(out).cpu().numpy().astype(np.float32) if out else x


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
    raise ConfigError(f"unknown attack {name!r} in a cell; choose from: clean, rgd, fgsm, pgd, cw, deepfool, "
                      f"autoattack, pgd-torch, {', '.join(MIN_NORM_ATTACKS)}")


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
    elif spec.attack == "autoattack":
        x_adv = autoattack(model, x, y, p, device=device)
    elif spec.attack == "pgd-torch":
        x_adv = torch_pgd(model, x, y, p, device=device)
    elif spec.attack in MIN_NORM_ATTACKS:
        x_adv = minimum_norm(spec.attack, model, x, y, p, device=device)
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


def attack_task(spec: CellSpec) -> Task:
    """The cell as a task of the executor: it reads its model's checkpoint. AutoAttack's
    cells, the costliest, wait until no other cell does."""
    return Task(spec.key, "attack", f"{spec.model}: {spec.attack}", compute_cell, (spec.to_dict(),), spec.checkpoint,
                rank=1 if spec.attack == "autoattack" else 0)


_MODELS: dict[str, torch.nn.Module] = {}  # per worker: the models its last cells attacked, by content hash


def compute_cell(spec_dict: dict[str, Any], *, path: str) -> CellResult:
    """A cell in a worker (or here): the model from ``path``, the test split from the task's context."""
    spec = CellSpec.from_dict(spec_dict)
    ctx = context()
    assert ctx.data is not None, "a cell runs with the grid's data in its context"
    model = _MODELS.get(spec.model_sha256)
    if model is None:
        if len(_MODELS) >= 4:
            _MODELS.clear()
        model = _MODELS[spec.model_sha256] = load_checkpoint(path).build_model(ctx.device)
    return run_cell(spec, ctx.data.test_images.numpy(), ctx.data.test_labels.numpy(), model, device=ctx.device)


def run_grid(
    specs: Sequence[CellSpec],
    store: CellStore,
    data: MNISTData,
    *,
    device: torch.device,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    fresh: bool = False,
    done: Done | None = None,
) -> list[CellResult]:
    """Every cell's result, in the order of ``specs``: finished cells are read from
    ``store``, the others computed (``fresh``: all of them) by ``executor`` and saved as
    each finishes, so an interrupted grid resumes with only the cells it had not finished."""
    check_jobs(jobs, executor)
    unique = list({s.key: s for s in specs}.values())
    pending = [s for s in unique if fresh or not store.has(s)]
    for spec in unique:
        if spec not in pending and done:
            done(spec, False)

    def finished(task: Task, result: CellResult, seconds: float) -> list[Task]:
        store.save(result, replace=fresh)
        if done:
            done(result.spec, True)
        return []

    run_tasks([attack_task(s) for s in pending], finished=finished, data=data, device=device, executor=executor,
              jobs=workers_for(jobs, executor, len(pending)), address=address)
    return [store.load(s) for s in specs]
