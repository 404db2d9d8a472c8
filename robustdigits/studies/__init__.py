"""The study's workflows over the core: the ablation, the attack experiment, the benchmark
beside ART's attacks, the robustness study and adversarial training for it."""
