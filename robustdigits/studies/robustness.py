"""Does momentum, dropout or batch-norm change robustness? The ablation's variants, attacked.

Per variant and seed (the ablation's checkpoints), over ``n`` test images (the first, or a
seeded random sample), as cells (:mod:`robustdigits.grid.cells`, so the grid resumes and
runs on Ray); the rows' measures, table and sanity checks are here, the report files in
:mod:`.robustness_report`:

- clean accuracy;
- untargeted PGD (L∞, torch-native) at each ε, ``pgd_steps`` steps of 2.5·ε/``pgd_steps``
  from ``pgd_restarts`` random starts (a restart only on the images no earlier one fooled):
  robust accuracy; the adversarially trained rows also at ``adv_extra_eps``;
- AutoAttack (opt-in) at each ε of ``autoattack`` (``aa_version`` mixed: standard on seed 1,
  APGD-CE + APGD-T on the other seeds), and the per-image worst case;
- the study's attack toward the next digit (from the image, stop at target probability
  0.5, keep the closest success): success rate and median L2;
- minimum-norm: per image of a stratified ``n_slow`` subset, the smallest L2 of a
  misclassifying example over the study's attack (keep-best), C&W-L2 and DeepFool
  (both untargeted; ``min_norm`` converged: also FMN, DDN, adv-lib's C&W); 0 where the
  clean image is already misclassified.

Adversarially trained rows (the textbook network with momentum, the study's optimizer and
3 epochs): PGD adversarial training (ART's ``AdversarialTrainerMadryPGD``, ε = 0.3),
the study's attack untargeted (ART's ``AdversarialTrainer``) and toward the next digit
(:func:`robustdigits.adversarial.targeted_adversarial_fit`; ART refuses targeted attacks).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..checks import check_choice, check_int, check_number
from ..data.datasets import MNISTData
from ..grid.cells import CellResult, CellSpec, CellStore, ModelRef
from ..grid.runner import run_grid
from ..scoring import already_target, robust, wilson_interval
from ..variants import VARIANTS
from .adversarial import (
    ADVERSARIAL,
    ADVERSARIAL_LABELS,
)

ANCHOR = ("Anchor: a PGD-trained MNIST network holds 88.5-89.6% robust accuracy at ε = 0.3 (Madry et al.; "
          "AutoAttack's table), with a larger network and far longer training than the study's 3 epochs.")


AA_VERSIONS = ("standard", "apgd", "mixed")  # mixed: standard on seed 1, apgd on the other seeds
SAMPLES = ("first", "random")
MIN_NORM = ("quick", "converged")
MIN_NORM_ROLES = {  # the cells each minimum-norm setting takes the per-image smallest L2 over
    "quick": ("rgd", "cw", "deepfool"),
    "converged": ("fmn", "ddn", "cw", "rgd-mn", "rgd", "deepfool"),
}
# Measured on full MNIST (benchmarks/min_norm_settings.py, docs/benchmarks.md): adv-lib's defaults find too
# little here. FMN's initial step 1 spends its steps on pixels already at 0 or 1 (found 49 of 100 images of a
# natural net at 1,000 steps; 0.1: 96); C&W from constant 0.001 at rate 0.01 finds 41 of 100 in 9 × 100.
FMN_ALPHA = 0.1
CW_CONST, CW_LEARNING_RATE = 0.1, 0.1
MIN_NORM_LABELS = {"fmn": "FMN", "ddn": "DDN", "cw": "C&W", "rgd-mn": "ours (untargeted)",
                   "rgd": "ours (next digit)", "deepfool": "DeepFool"}
GAP_FLAG = 1.0  # points of PGD robust accuracy above AutoAttack's that flag a weak attack or masking
SQUARE_ROWS = ("tutorial", *ADVERSARIAL)  # where a masked gradient would show: Square beating the gradient attacks


@dataclass(frozen=True)
class RobustnessConfig:
    n: int = 1000  # the first n test images
    n_slow: int = 100  # the minimum-norm attacks run on a stratified subset of this many
    seeds: int = 3  # the ablation's seeds 1..seeds per variant
    eps: tuple[float, ...] = (0.1, 0.2, 0.3)  # PGD L∞ budgets (pixels)
    pgd_steps: int = 100
    pgd_restarts: int = 5  # random starts; a restart runs only on the images no earlier one fooled
    rgd_steps: int = 200  # the study's attack: at most this many steps
    cw_steps: int = 10
    cw_search: int = 3
    deepfool_steps: int = 50
    batch_size: int = 128
    adversarial: tuple[str, ...] = ADVERSARIAL  # adversarially trained rows (seed 1 each)
    adv_epochs: int = 3  # the study's budget: 3 epochs
    adv_eps: float = 0.3  # PGD adversarial training's L∞ budget (pixels)
    adv_pgd_steps: int = 7  # PGD steps inside adversarial training (ART's default), of 2.5·ε/steps
    adv_rgd_steps: int = 10  # the study's attack inside adversarial training (η = 1, λ = 0.05)
    l2_budgets: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(41))  # 0 to 4 in pixel L2
    adv_extra_eps: tuple[float, ...] = (0.4, 0.5)  # more L∞ radii (PGD, and AutoAttack where it runs) for the
    # adversarially trained rows: where they too fall to 0 % (the attacks work)
    autoattack: tuple[float, ...] = ()  # L∞ radii where AutoAttack runs too, on the same images (opt-in)
    square: tuple[float, ...] = ()  # L∞ radii of the black-box Square attack alone, on the SQUARE_ROWS (opt-in)
    aa_version: str = "standard"  # standard (APGD-CE, APGD-T, FAB-T, Square), apgd (APGD-CE + APGD-T), or
    # mixed: standard on seed 1 (the adversarial rows' only seed), apgd on the other seeds
    sample: str = "first"  # first: the first n test images; random: a seeded random n, stratified by digit
    sample_seed: int = 0
    min_norm: str = "quick"  # quick: the study's attack, ART's C&W (cw_search × cw_steps), DeepFool;
    # converged: also adv-lib's FMN and DDN (mn_steps each), its C&W (mn_cw_search × mn_cw_steps) in place of
    # ART's, and the study's attack untargeted at mn_steps (the per-image smallest over all of them)
    mn_steps: int = 1000
    mn_cw_search: int = 9
    mn_cw_steps: int = 100

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("n_slow", self.n_slow, 1)
        check_int("seeds", self.seeds, 1)
        for e in self.eps:
            check_number("eps", e, 0.0, 1.0, low_open=True)
        check_int("pgd_steps", self.pgd_steps, 1)
        check_int("pgd_restarts", self.pgd_restarts, 1)
        for e in self.adv_extra_eps:
            check_number("adv_extra_eps", e, 0.0, 1.0, low_open=True)
        check_int("rgd_steps", self.rgd_steps, 1)
        for name in self.adversarial:
            check_choice("adversarial", name, ADVERSARIAL)
        for e in self.autoattack:
            check_number("autoattack", e, 0.0, 1.0, low_open=True)
        for e in self.square:
            check_number("square", e, 0.0, 1.0, low_open=True)
        check_choice("aa_version", self.aa_version, AA_VERSIONS)
        check_choice("sample", self.sample, SAMPLES)
        check_int("sample_seed", self.sample_seed, 0)
        check_choice("min_norm", self.min_norm, MIN_NORM)
        check_int("mn_steps", self.mn_steps, 1)
        check_int("mn_cw_search", self.mn_cw_search, 1)
        check_int("mn_cw_steps", self.mn_cw_steps, 1)

    def selection(self, n_test: int) -> str:
        """The cells' image selection: the same images for every row and seed."""
        n = min(self.n, n_test)
        return f"first:{n}" if self.sample == "first" else f"random:{n}:{self.sample_seed}"

    def eps_of(self, row: str) -> tuple[float, ...]:
        """The PGD radii of a row: ``eps``, and ``adv_extra_eps`` for an adversarially trained row."""
        extra = tuple(e for e in self.adv_extra_eps if e not in self.eps) if row in ADVERSARIAL else ()
        return self.eps + extra

    def autoattack_of(self, row: str) -> tuple[float, ...]:
        """AutoAttack's radii of a row: ``autoattack`` (none when it is off), and
        ``adv_extra_eps`` for an adversarially trained row."""
        if not self.autoattack:
            return ()
        extra = tuple(e for e in self.adv_extra_eps if e not in self.autoattack) if row in ADVERSARIAL else ()
        return self.autoattack + extra

    def aa_version_of(self, seed: int) -> str:
        """The AutoAttack version run on a model of ``seed``."""
        if self.aa_version == "mixed":
            return "standard" if seed == 1 else "apgd"
        return self.aa_version

    def all_eps(self) -> tuple[float, ...]:
        """Every PGD radius of some row (the table's columns)."""
        return self.eps + tuple(e for e in self.adv_extra_eps if e not in self.eps and self.adversarial)

    def all_autoattack(self) -> tuple[float, ...]:
        if not self.autoattack:
            return ()
        return self.autoattack + tuple(e for e in self.adv_extra_eps if e not in self.autoattack and self.adversarial)


def cell_specs(model: ModelRef, data: MNISTData, config: RobustnessConfig) -> dict[str, CellSpec]:
    """The cells of one model (``model.name`` its row, ``model.info["seed"]`` its seed), by
    role: clean, pgd@ε, aa@ε (where AutoAttack runs), rgd, cw, deepfool, and with converged
    minimum-norm attacks fmn, ddn and rgd-mn (cw is then adv-lib's)."""
    n = min(config.n, data.info.n_test)
    every = config.selection(data.info.n_test)
    slow = f"stratified:{min(config.n_slow, n)}:{n}" if config.sample == "first" else \
        f"{every}/stratified:{min(config.n_slow, n)}"  # a subset of the same images
    base = {"batch_size": config.batch_size, "seed": 0}

    def spec(attack: str, params: dict[str, Any], selection: str) -> CellSpec:
        return CellSpec(data_sha256=data.info.sha256, data_name=data.info.name, model=model.name,
                        model_sha256=model.sha256, attack=attack, params={**base, **params}, selection=selection,
                        model_info={"row": model.name, "seed": model.info["seed"]}, checkpoint=model.checkpoint)

    cells = {"clean": spec("clean", {"targeted": False, "target": None}, every)}
    for e in config.eps_of(model.name):
        cells[f"pgd@{e:g}"] = spec("pgd-torch", {"targeted": False, "target": None, "eps": e,
                                                 "eps_step": 2.5 * e / config.pgd_steps, "steps": config.pgd_steps,
                                                 "restarts": config.pgd_restarts}, every)
    if model.name in SQUARE_ROWS:
        for e in config.square:
            cells[f"square@{e:g}"] = spec("autoattack", {"targeted": False, "target": None, "eps": e,
                                                         "version": "square"}, every)
    for e in config.autoattack_of(model.name):
        cells[f"aa@{e:g}"] = spec("autoattack", {"targeted": False, "target": None, "eps": e,
                                                 "version": config.aa_version_of(model.info["seed"])}, every)
    cells["rgd"] = spec("rgd", {"targeted": True, "target": "next-digit", "steps": config.rgd_steps, "eta": 0.1,
                                "lam": 0.05, "early_stop": 0.5, "keep_best": True}, every)
    untargeted = {"targeted": False, "target": None}
    if config.min_norm == "converged":
        cells["fmn"] = spec("fmn", {**untargeted, "steps": config.mn_steps, "alpha": FMN_ALPHA}, slow)
        cells["ddn"] = spec("ddn", {**untargeted, "steps": config.mn_steps}, slow)
        cells["cw"] = spec("cw-l2", {**untargeted, "steps": config.mn_cw_steps, "search": config.mn_cw_search,
                                     "const": CW_CONST, "learning_rate": CW_LEARNING_RATE}, slow)
        cells["rgd-mn"] = spec("rgd", {**untargeted, "steps": config.mn_steps, "eta": 0.1, "lam": 0.05,
                                       "early_stop": None, "keep_best": True}, slow)
    else:
        cells["cw"] = spec("cw", {**untargeted, "steps": config.cw_steps, "search": config.cw_search, "const": 10.0,
                                  "learning_rate": 0.1}, slow)
    cells["deepfool"] = spec("deepfool", {"targeted": False, "target": None, "steps": config.deepfool_steps}, slow)
    return cells


# --- per-model measures, from the cells' per-sample results ----------------------------------------------


def min_norm_distances(cells: dict[str, CellResult], roles: Sequence[str] = MIN_NORM_ROLES["quick"]
                       ) -> dict[str, np.ndarray]:
    """Per attack (role), per image of the minimum-norm subset (DeepFool's cell's order), the
    L2 of its example where that misclassifies, inf where it found none, 0 where the clean
    image is already misclassified."""
    ref = cells["deepfool"].samples
    wrong = ref["clean_pred"] != ref["label"]
    out = {}
    for role in roles:
        s = cells[role].samples
        position = {int(i): k for k, i in enumerate(s["index"])}  # the next-digit cell holds every image
        rows = [position[int(i)] for i in ref["index"]]
        found = np.where(s["adv_pred"][rows] != s["label"][rows], s["l2"][rows], np.inf)
        out[role] = np.where(wrong, 0.0, found)
    return out


def min_l2(cells: dict[str, CellResult], roles: Sequence[str] = MIN_NORM_ROLES["quick"]) -> np.ndarray:
    """Per image of the minimum-norm subset, the smallest L2 of a misclassifying example
    over the attacks ``roles`` (0: already misclassified; inf: none found)."""
    return np.min(np.stack(list(min_norm_distances(cells, roles).values())), axis=0)


@dataclass
class ModelMeasures:
    clean: float
    pgd: dict[float, float]  # ε -> robust accuracy (%): right on the clean image and under PGD
    rgd_success: float  # % of the images not already read as the target
    rgd_median_l2: float | None  # over its successes
    min_l2: np.ndarray  # per image of the minimum-norm subset
    counts: dict[str, tuple[int, int]]  # measure -> (hits, n), for pooled Wilson intervals
    aa: dict[float, float] = field(default_factory=dict)  # ε -> AutoAttack robust accuracy (%), clean-correct
    worst: dict[float, float] = field(default_factory=dict)  # ε -> robust to AutoAttack, PGD, Square (same image)
    square: dict[float, float] = field(default_factory=dict)  # ε -> Square's robust accuracy (%), clean-correct
    rgd_l2: np.ndarray = field(default_factory=lambda: np.zeros(0))  # L2 of each success (pooled medians)
    rgd_already: int = 0  # images the model already reads as the target: not in its rate, counted apart
    min_l2_by: dict[str, np.ndarray] = field(default_factory=dict)  # attack (role) -> per image, as min_l2

    def gap(self, eps: float) -> float | None:
        """PGD's robust accuracy minus AutoAttack's at ``eps``, in points (None without both)."""
        return self.pgd[eps] - self.aa[eps] if eps in self.pgd and eps in self.aa else None


def _radii(cells: dict[str, Any], kind: str) -> list[float]:
    """The radii of a model's cells of ``kind`` (pgd, aa, square), from their roles ``kind@ε``."""
    return sorted(float(role.split("@")[1]) for role in cells if role.startswith(kind + "@"))


def measure(cells: dict[str, CellResult], config: RobustnessConfig) -> ModelMeasures:
    """One model's measures from its cells. Robust: right on the clean image and under the
    attack. The next-digit attack's success leaves out the images the model already reads as
    the next digit (a success it did not make), counted apart."""
    counts = {}
    clean = cells["clean"].samples
    counts["clean"] = (int(np.sum(clean["adv_pred"] == clean["label"])), len(clean["label"]))
    pgd, pgd_robust = {}, {}
    for e in _radii(cells, "pgd"):
        s = cells[f"pgd@{e:g}"].samples
        pgd_robust[e] = robust(s["clean_pred"], s["adv_pred"], s["label"])
        counts[f"pgd@{e:g}"] = (int(np.sum(pgd_robust[e])), len(s["label"]))
        pgd[e] = 100.0 * float(np.mean(pgd_robust[e]))
    square, square_robust = {}, {}
    for e in config.square:
        if f"square@{e:g}" in cells:
            s = cells[f"square@{e:g}"].samples
            square_robust[e] = robust(s["clean_pred"], s["adv_pred"], s["label"])
            counts[f"square@{e:g}"] = (int(np.sum(square_robust[e])), len(square_robust[e]))
            square[e] = 100.0 * float(np.mean(square_robust[e]))
    aa, worst = {}, {}
    for e in _radii(cells, "aa"):
        s = cells[f"aa@{e:g}"].samples
        held = robust(s["clean_pred"], s["adv_pred"], s["label"])
        counts[f"aa@{e:g}"] = (int(np.sum(held)), len(held))
        aa[e] = 100.0 * float(np.mean(held))
        for other in (pgd_robust, square_robust):  # the per-image worst case over everything run at ε
            if e in other:
                held = held & other[e]
        counts[f"worst@{e:g}"] = (int(np.sum(held)), len(held))
        worst[e] = 100.0 * float(np.mean(held))
    r = cells["rgd"].samples
    left = already_target(r["clean_pred"], r["target"])
    won = r["success"] & ~left
    counts["rgd"] = (int(np.sum(won)), int(np.sum(~left)))
    l2s = np.asarray(r["l2"][won], dtype=np.float64)
    by = min_norm_distances(cells, MIN_NORM_ROLES[config.min_norm])
    return ModelMeasures(100.0 * counts["clean"][0] / counts["clean"][1], pgd,
                         100.0 * counts["rgd"][0] / max(counts["rgd"][1], 1),
                         float(np.median(l2s)) if len(l2s) else None, np.min(np.stack(list(by.values())), axis=0),
                         counts, aa, worst, square, rgd_l2=l2s, rgd_already=int(np.sum(left)), min_l2_by=by)


# --- the table -------------------------------------------------------------------------------------------


@dataclass
class RowResult:
    row: str
    label: str
    seeds: list[int]
    measures: list[ModelMeasures] = field(default_factory=list)

    def stat(self, f: Callable[[ModelMeasures], float | None]) -> tuple[float | None, float | None]:
        values = [v for v in (f(m) for m in self.measures) if v is not None]
        if not values:
            return None, None
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)

    def pooled(self, key: str) -> tuple[float, float]:
        """95% Wilson interval of a rate pooled over seeds (all images of all seeds)."""
        hits = sum(m.counts[key][0] for m in self.measures)
        n = sum(m.counts[key][1] for m in self.measures)
        return wilson_interval(hits, n)


def columns(config: RobustnessConfig) -> list[str]:
    cols = ["model", "seeds", "n", "clean acc. (%)", "± std", "95% CI"]
    for e in config.all_eps():
        cols += [f"PGD ε={e:g} robust acc. (%)", "± std", "95% CI"]
    for e in config.square:
        cols += [f"Square ε={e:g} robust acc. (%)"]
    for e in config.all_autoattack():
        cols += [f"AutoAttack ε={e:g} robust acc. (%)", "± std", "95% CI", f"worst case ε={e:g} (%)",
                 "PGD − AA (points)"]
    cols += ["next-digit attack success (%)", "± std", "95% CI", "already the target", "its median L2",
             "median min-norm L2", "min-norm n"]
    return cols


def _ci(r: RowResult, key: str) -> str | None:
    """The row's pooled 95% interval of ``key`` (None where the row does not measure it)."""
    if key not in r.measures[0].counts:
        return None
    low, high = r.pooled(key)
    return f"{low:.1f}–{high:.1f}"


def _at(what: str, eps: float) -> Callable[[ModelMeasures], float | None]:
    """A model's PGD, Square or AutoAttack accuracy, worst case or PGD − AA gap at ``eps``
    (None where it was not run at ``eps``)."""
    if what == "gap":
        return lambda m: m.gap(eps)
    return lambda m: getattr(m, what).get(eps)


def table_rows(rows: Sequence[RowResult], config: RobustnessConfig) -> list[list[Any]]:
    out = []
    for r in rows:
        line: list[Any] = [r.row, len(r.seeds), r.measures[0].counts["clean"][1]]
        line += [*r.stat(lambda m: m.clean), _ci(r, "clean")]
        for e in config.all_eps():
            line += [*r.stat(_at("pgd", e)), _ci(r, f"pgd@{e:g}")]
        for e in config.square:
            line += [r.stat(_at("square", e))[0]]  # None: not run on this row
        for e in config.all_autoattack():
            line += [*r.stat(_at("aa", e)), _ci(r, f"aa@{e:g}"), r.stat(_at("worst", e))[0],
                     r.stat(_at("gap", e))[0]]
        successes = np.concatenate([m.rgd_l2 for m in r.measures])  # the median over every seed's successes
        line += [*r.stat(lambda m: m.rgd_success), _ci(r, "rgd"), sum(m.rgd_already for m in r.measures),
                 float(np.median(successes)) if len(successes) else None]
        median = float(np.median(np.concatenate([m.min_l2 for m in r.measures])))
        line += [None if np.isinf(median) else median, len(r.measures[0].min_l2)]
        out.append(line)
    return out


def strongest(m: ModelMeasures) -> dict[float, float]:
    """Per ε, the model's robust accuracy under everything run there (the worst case where
    AutoAttack ran, else PGD)."""
    return {e: m.worst.get(e, acc) for e, acc in m.pgd.items()}


def zero_radius(rows: Sequence[RowResult]) -> dict[str, float | None]:
    """Per row, the smallest ε where every seed's model falls to 0 % robust accuracy under
    the strongest attack run there (None: no ε run brings it to 0 %)."""
    out: dict[str, float | None] = {}
    for r in rows:
        radii = sorted(set.intersection(*(set(m.pgd) for m in r.measures)))
        out[r.row] = next((e for e in radii if all(strongest(m)[e] == 0 for m in r.measures)), None)
    return out


def sanity_checks(rows: Sequence[RowResult], config: RobustnessConfig) -> list[str]:
    """AutoAttack's habit: what would betray a broken setting. Empty when all hold."""
    problems = []
    for r in rows:
        for seed, m in zip(r.seeds, r.measures):
            where = f"{r.row} seed {seed}"
            radii = sorted(m.pgd)
            for e in radii:
                if m.pgd[e] > m.clean + 1e-9:
                    problems.append(f"{where}: PGD ε={e:g} robust accuracy {m.pgd[e]:.1f}% above clean {m.clean:.1f}%")
            for a, b in zip(radii, radii[1:]):
                if m.pgd[b] > m.pgd[a] + 1e-9:
                    problems.append(f"{where}: PGD at ε={b:g} ({m.pgd[b]:.1f}%) better than at ε={a:g} "
                                    f"({m.pgd[a]:.1f}%)")
            last = config.eps[-1]
            if m.rgd_success == 0 and m.pgd[last] < 50:
                problems.append(f"{where}: the study's attack succeeds on 0% of a non-robust model (PGD leaves "
                                f"{m.pgd[last]:.1f}%): a likely broken setting")
            for e in sorted(m.aa):
                gap = m.gap(e)
                if gap is not None and gap > GAP_FLAG:
                    problems.append(f"{where}: PGD at ε={e:g} reports {gap:.1f} points more robustness than AutoAttack "
                                    "(flagged: a weak attack or gradient masking; trust AutoAttack)")
            for e, held in m.square.items():
                gradient = min([m.pgd[e]] * (e in m.pgd) + [m.aa[e]] * (e in m.aa), default=None)
                if gradient is not None and gradient - held > GAP_FLAG:
                    problems.append(f"{where}: the black-box Square attack at ε={e:g} leaves {held:.1f}%, "
                                    f"{gradient - held:.1f} points below the gradient attacks (flagged: gradient "
                                    "masking; trust the worst case)")
            if m.pgd[radii[-1]] == m.clean and m.clean > 0:
                problems.append(f"{where}: PGD at ε={radii[-1]:g} changes no prediction: a likely broken "
                                "setting (or gradient masking)")
    for row, zero in zero_radius(rows).items():
        if zero is None:
            problems.append(f"{row}: no ε run brings it to 0% robust accuracy: the attacks may not work on it "
                            "(or a larger ε is needed)")
    return problems


# --- adversarial training --------------------------------------------------------------------------------


def row_label(row: str) -> str:
    for v in VARIANTS:
        if v.name == row:
            return v.label
    return ADVERSARIAL_LABELS[row]


def run_robustness(models: Sequence[ModelRef], data: MNISTData, config: RobustnessConfig, store: CellStore, *,
                   device: torch.device, executor: str = "local", jobs: int | None = None,
                   address: str | None = None, fresh: bool = False,
                   done: Callable[[CellSpec, bool], None] | None = None
                   ) -> tuple[list[RowResult], list[CellResult]]:
    """Models already trained: every model's cells (those ``store`` lacks are computed),
    then the rows, in the order the models come, a row per ``ModelRef.name`` with its seeds."""
    specs = [cell_specs(m, data, config) for m in models]
    results = run_grid([s for d in specs for s in d.values()], store, data, device=device, executor=executor,
                       jobs=jobs, address=address, fresh=fresh, done=done)
    return rows_of(models, specs, results, config), results


def rows_of(models: Sequence[ModelRef], specs: Sequence[dict[str, CellSpec]], results: Sequence[CellResult],
          config: RobustnessConfig) -> list[RowResult]:
    by_key = {r.spec.key: r for r in results}
    rows: dict[str, RowResult] = {}
    for m, cells in zip(models, specs):
        row = rows.setdefault(m.name, RowResult(m.name, row_label(m.name), []))
        row.seeds.append(m.info["seed"])
        row.measures.append(measure({role: by_key[s.key] for role, s in cells.items()}, config))
    return list(rows.values())


