"""vpd's own format: save_pretrained / from_pretrained (folder and hub id), config round trip."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from vpd.modeling.depth import VPDDepth
from vpd.modeling.hub import PretrainedModel


def test_round_trip_rebuilds_the_model_from_config_and_weights_alone(tmp_path, tiny_depth_model):
    out = tiny_depth_model.save_pretrained(tmp_path / "model")
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left behind
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "vpd_depth" and config["backbone"]["unet"]["block_out_channels"] == [32, 64, 64, 64]
    loaded = VPDDepth.from_pretrained(out)
    assert loaded.config == tiny_depth_model.config
    assert not loaded.training
    for (ka, a), (kb, b) in zip(tiny_depth_model.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(a, b), ka
    assert all(not p.requires_grad for p in loaded.backbone.vae.parameters())
    x = torch.rand(2, 3, 80, 100)
    with torch.inference_mode():
        torch.testing.assert_close(
            loaded(x, torch.tensor([0, -1])).depth, tiny_depth_model(x, torch.tensor([0, -1])).depth
        )
    generic = PretrainedModel.from_pretrained(out)  # the class comes from config.json
    assert isinstance(generic, VPDDepth)


def test_hub_id_and_dtype(tmp_path, monkeypatch, tiny_depth_model):
    import huggingface_hub.constants as constants

    revision = "f" * 40
    repo = tmp_path / "hub" / "models--me--tiny-depth"
    tiny_depth_model.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    model = VPDDepth.from_pretrained("me/tiny-depth", local_files_only=True, dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(FileNotFoundError, match="cannot fetch the checkpoint from the hub"):
        VPDDepth.from_pretrained("me/absent", local_files_only=True)


def test_clear_errors(tmp_path, tiny_depth_model):
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        VPDDepth.from_pretrained(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors missing"):
        VPDDepth.from_pretrained(tmp_path / "half")
    out = tiny_depth_model.save_pretrained(tmp_path / "m")
    config = json.loads((out / "config.json").read_text())
    config["backbone"]["unknown_field"] = 1
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"unknown config key backbone\.'unknown_field'"):
        VPDDepth.from_pretrained(out)


def test_saved_files_keep_the_process_umask(tmp_path, tiny_depth_model):
    old = os.umask(0o022)
    try:
        out = tiny_depth_model.save_pretrained(tmp_path / "new")  # a new folder: renamed into place
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.iterdir()]}
        assert modes == {"new": 0o755, "config.json": 0o644, "model.safetensors": 0o644}
        tiny_depth_model.save_pretrained(out)  # an existing folder: files replaced
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {
            "config.json": 0o644,
            "model.safetensors": 0o644,
        }
        assert [p.name for p in tmp_path.iterdir()] == ["new"]  # no temporary folder left
    finally:
        os.umask(old)
