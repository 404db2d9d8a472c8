"""The ablation over seeds: mean ± std and the report that states them."""

from __future__ import annotations

import json
import statistics

import torch

from robustdigits.studies.ablation import AblationConfig, run_ablation, write_ablation_report
from robustdigits.variants import get_variant

CPU = torch.device("cpu")


def test_seeds_give_mean_and_sample_std(small_data, tmp_path):
    config = AblationConfig(budget="epochs", epochs=1, seeds=2)  # 10 steps per run on 640 images
    variant = get_variant("textbook-momentum-dropout0.1")
    (result,) = run_ablation(small_data, config, device=CPU, checkpoints=tmp_path / "ck", variants=[variant])
    assert [r.metrics["test_step"][-1] for r in result.runs] == [10, 10]
    assert result.accuracies[0] != result.accuracies[1]  # seeds 1 and 2 differ
    assert result.mean == statistics.fmean(result.accuracies)
    assert result.std == statistics.stdev(result.accuracies)
    assert sorted(p.name for p in (tmp_path / "ck").glob("*/*.pt")) == [
        "textbook-momentum-dropout0.1-epochs1-seed1.pt", "textbook-momentum-dropout0.1-epochs1-seed2.pt"]

    write_ablation_report([result], config, small_data, tmp_path / "out", CPU)
    md = (tmp_path / "out" / "ablation.md").read_text()
    assert "seeds 1, 2 (mean ± sample std over seeds)" in md
    assert f"| {result.mean:.2f} | {result.std:.2f} |" in md
    record = json.loads((tmp_path / "out" / "ablation.json").read_text())["records"][0]
    assert record["accuracies"] == result.accuracies and record["train_config"]["momentum"] == 0.5
