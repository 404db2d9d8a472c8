"""Training reaches accuracy, is deterministic and resumable; checkpoints and their errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from robustdigits.checkpoints import FORMAT_VERSION, CheckpointError, load_checkpoint
from robustdigits.config import ModelSpec, TrainConfig, study_steps
from robustdigits.training import train

CPU = torch.device("cpu")
SHORT = TrainConfig(steps=20, batch_size=32, log_interval=5)


def test_short_training_is_far_above_chance(trained):
    # 600 steps of TextbookNet on the embedded data; chance is 10 %.
    assert trained.final.accuracy > 90.0
    assert trained.final.total == 2000
    assert len(trained.metrics["train_loss"]) == 60
    assert trained.metrics["train_loss"][-1] < trained.metrics["train_loss"][0] / 3


def test_study_budget_is_2813_steps():
    assert study_steps() == 2813
    assert TrainConfig(steps=study_steps()).total_steps(8000) == 2813
    assert TrainConfig(epochs=3).total_steps(8000) == 375


def test_same_seed_gives_bit_identical_weights(small_data):
    spec = ModelSpec("textbook", {"dropout": 0.1})
    a = train(spec, SHORT, small_data, device=CPU)
    b = train(spec, SHORT, small_data, device=CPU)
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
    assert a.final.accuracy == b.final.accuracy
    c = train(spec, dataclasses.replace(SHORT, seed=2), small_data, device=CPU)
    assert not torch.equal(a.model.state_dict()["features.0.weight"], c.model.state_dict()["features.0.weight"])


def test_resume_after_interruption_matches_an_uninterrupted_run(small_data, tmp_path):
    config = TrainConfig(epochs=3, batch_size=64, log_interval=3)  # 10 steps per epoch
    spec = ModelSpec("improved", {"dropout": 0.1})
    whole = train(spec, config, small_data, device=CPU)

    path = tmp_path / "run.pt"

    def stop_in_second_epoch(event):
        if event.kind == "step" and event.step == 15:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(spec, config, small_data, device=CPU, checkpoint=path, progress=stop_in_second_epoch)
    saved = load_checkpoint(path)
    assert (saved.epoch, saved.step, saved.complete) == (1, 10, False)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind

    resumed = train(spec, config, small_data, device=CPU, checkpoint=path, resume=True)
    assert resumed.resumed_from_step == 10
    for (name, x), (_, y) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(x, y), name
    assert resumed.metrics == whole.metrics
    assert load_checkpoint(path).complete


def test_checkpoint_round_trip(small_data, tmp_path):
    spec = ModelSpec("tutorial")
    result = train(spec, SHORT, small_data, device=CPU, checkpoint=tmp_path / "t.pt")
    ckpt = load_checkpoint(tmp_path / "t.pt")
    assert ckpt.model_spec == spec and ckpt.train_config == SHORT
    assert ckpt.dataset == small_data.info and ckpt.complete and ckpt.step == 20
    assert ckpt.metrics["test_accuracy"] == [result.final.accuracy]
    model = ckpt.build_model()
    x = torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(model(x), result.model.eval()(x), rtol=0, atol=0)


def test_resume_with_another_architecture_is_refused(small_data, tmp_path):
    train(ModelSpec("tutorial"), SHORT, small_data, device=CPU, checkpoint=tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match=r"holds a 'tutorial' model .* not 'textbook'"):
        train(ModelSpec("textbook"), SHORT, small_data, device=CPU, checkpoint=tmp_path / "t.pt", resume=True)
    with pytest.raises(CheckpointError, match=r"another config"):
        train(ModelSpec("tutorial"), dataclasses.replace(SHORT, lr=0.1), small_data, device=CPU,
              checkpoint=tmp_path / "t.pt", resume=True)


def test_weights_of_another_architecture_are_refused(small_data, tmp_path):
    train(ModelSpec("tutorial"), SHORT, small_data, device=CPU, checkpoint=tmp_path / "t.pt")
    ckpt = load_checkpoint(tmp_path / "t.pt")
    ckpt.model_spec = ModelSpec("textbook")
    with pytest.raises(CheckpointError, match=r"do not fit the 'textbook' architecture"):
        ckpt.build_model()


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"bad.pt is not a readable robustdigits checkpoint \(UnpicklingError\)"):
        load_checkpoint(tmp_path / "bad.pt")


def test_foreign_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"not a robustdigits checkpoint \(missing fields\)"):
        load_checkpoint(tmp_path / "other.pt")


def test_newer_format_version(small_data, tmp_path):
    train(ModelSpec("tutorial"), SHORT, small_data, device=CPU, checkpoint=tmp_path / "t.pt")
    raw = torch.load(tmp_path / "t.pt", weights_only=True)
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match=rf"format {FORMAT_VERSION + 1}, newer .* upgrade robustdigits"):
        load_checkpoint(tmp_path / "t.pt")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint .*none.pt not found; pass a checkpoint written by"):
        load_checkpoint(tmp_path / "none.pt")


@pytest.mark.parametrize(("field", "value", "error", "match"), [
    ("lr", 0, ValueError, r"lr must be in \(0.0, 1000.0\], got 0"),
    ("lr", float("nan"), ValueError, "lr must be finite, got nan"),
    ("momentum", float("nan"), ValueError, "momentum must be finite"),
    ("seed", 2**70, ValueError, "seed must be <= 9223372036854775807"),
    ("momentum", 1.5, ValueError, r"momentum must be in \[0.0, 1.0\]"),
    ("batch_size", True, TypeError, "batch_size must be an int"),
    ("steps", 0, ValueError, "steps must be >= 1"),
    ("epochs", 2.5, TypeError, "epochs must be an int"),
])
def test_train_config_validation_names_the_field(field, value, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**{field: value})
