"""robustdigits: train the classic MNIST networks, attack them, and see the result.

Module map, by layer; imports only point down (``tests/test_layering.py`` keeps it so):

- ``cli/`` — the command line: the click group and shared options (``app``), commands
  by group (``training``, ``attacking``, ``robust``, ``site``, ``data``); the only place that prints.
  ``entry`` and ``__main__`` start it. ``api`` — the public helpers (``load_pixels``,
  ``load_variant``, ``make_classifier``), importable from ``robustdigits`` itself.
- ``studies/`` and ``web/`` — the workflows: ``ablation`` (the study's nine variants),
  ``experiment`` (the study's attack experiment), ``bench`` (our attack beside ART's),
  ``robustness`` (its cells and measures), ``robustness_grid`` (as one grid),
  ``robustness_report`` and ``robustness_figures`` (its report), ``adversarial`` (the
  adversarially trained rows), ``robust_eval`` (one model under AutoAttack, PGD, Square, a
  transfer), ``contrasts`` (paired over seeds); ``web.demo`` (the draw-a-digit page's server).
- ``grid/`` — cells: ``cells`` (a cell's settings, hash and per-sample results, stored
  atomically), ``runner`` (running cells locally or on Ray; AutoAttack's adapter),
  ``minimum_norm`` (adv-lib's FMN, DDN and C&W as cells), ``executor`` and ``train_cells``.
- the core, here at the top: ``training`` (resumable SGD), ``checkpoints`` (atomic,
  versioned, named), ``evaluation``, ``variants`` (the study's nine rows), ``config``
  (frozen configs), ``art_bridge`` (a model as an ART classifier).
- ``attacks`` (the repository's ``attacks/`` folder, installed as ``robustdigits.attacks``):
  ``RegularizedGradientDescent``, the study's attack as an ART EvasionAttack. ``models``
  (the registry of networks), ``data/`` (embedded subset, IDX files, the verified
  full-MNIST cache, the batch loader, pixels) and ``report/`` (tables, plots, the page).
- shared, at the bottom: ``errors``, ``checks``, ``fileio``, ``scoring``, ``targets``,
  ``devices``; ``study_loop`` (the study's own loop as written, for tests and benchmarks).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["RegularizedGradientDescent", "load_pixels", "load_variant", "make_classifier"]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (``import robustdigits`` stays light for
    the command line)."""
    if name == "RegularizedGradientDescent":
        from .attacks import RegularizedGradientDescent

        return RegularizedGradientDescent
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'robustdigits' has no attribute {name!r}")
