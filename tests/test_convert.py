"""Converters: strict key maps with clear errors, safe checkpoint loading, and `vpd convert`."""

from __future__ import annotations

import argparse
import os
import pickle

import pytest
import torch

from reference import official_state_dict
from vpd.cli import main
from vpd.convert.checkpoint_io import extract_state_dict, load_checkpoint
from vpd.convert.ldm import infer_unet_config, infer_vae_config
from vpd.convert.vpd_depth import convert_depth_state_dict, convert_vpd_depth, detect_layout
from vpd.modeling.depth import VPDDepth
from vpd.modeling.hub import load_state_dict_strict


@pytest.fixture(scope="module")
def official():
    return official_state_dict("vpd_depth_tiny")


def test_inferred_configs_match_the_fixture(official):
    prefix = "encoder.unet.unet.diffusion_model."
    unet = infer_unet_config({k.removeprefix(prefix): v for k, v in official.items() if k.startswith(prefix)})
    assert unet["block_out_channels"] == [64, 128, 256, 256]
    assert unet["layers_per_block"] == 2 and unet["cross_attention_dim"] == 768 and unet["attention_head_dim"] == 8
    assert unet["down_block_types"][-1] == "DownBlock2D" and unet["up_block_types"][0] == "UpBlock2D"
    vae = infer_vae_config(
        {k.removeprefix("encoder.encoder_vq."): v for k, v in official.items() if "encoder_vq." in k}
    )
    assert vae["block_out_channels"] == [32, 64, 128, 128] and vae["latent_channels"] == 4
    config, state = convert_depth_state_dict(official)
    assert config.fused_channels == 1536 and config.head_channels == 192 and config.deconv_channels == (32, 32, 32)
    assert len(config.backbone.class_names) == 27
    # every official key except the unused post_quant_conv lands somewhere
    assert len(state) == len(official) - 2


def test_unexpected_and_missing_keys_are_named(official):
    extra = {**official, "encoder.mystery.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"1 unexpected keys in the vpd checkpoint: encoder\.mystery\.weight"):
        convert_depth_state_dict(extra)
    missing = {k: v for k, v in official.items() if not k.startswith("last_layer_depth.2.")}
    with pytest.raises(ValueError, match=r"2 missing: head\.predict\.2\.weight, head\.predict\.2\.bias"):
        convert_vpd_depth({"model": missing})
    with pytest.raises(ValueError, match="not a VPD depth checkpoint"):
        detect_layout({"foo.weight": torch.zeros(1)})


def test_mis_shaped_keys_are_named(official):
    config, state = convert_depth_state_dict(official)
    state["head.conv.0.weight"] = torch.zeros(192, 31, 3, 3)
    with torch.device("meta"):
        model = VPDDepth(config)
    with pytest.raises(
        ValueError,
        match=r"1 mis-shaped or mis-typed: head\.conv\.0\.weight \(192, 31, 3, 3\) vs model \(192, 32, 3, 3\)",
    ):
        load_state_dict_strict(model, state, source="x.pth", assign=True)


class Payload:
    """Unpickling this would run code: the loader must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle", "raw"])
def test_safe_loading_refuses_arbitrary_objects(tmp_path, writer):
    path = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save({"model": {"w": torch.zeros(1)}, "x": Payload()}, path)
    elif writer == "pickle":
        payload = {"model": {"w": 1.0}, "x": Payload()}
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)  # what legacy torch.save wrote
    else:
        path.write_bytes(pickle.dumps(Payload()))  # a bare pickle at the top level, current protocol
    with pytest.raises(ValueError, match=r"refusing to unpickle .*system") as refused:
        load_checkpoint(path)
    # Never torch's advice to retry with weights_only=False, nor an option the command line does not have.
    assert "weights_only" not in str(refused.value) and "allow_globals" not in str(refused.value)


def test_loading_formats(tmp_path):
    from safetensors.torch import save_file

    tensors = {"a.weight": torch.ones(2)}
    torch.save({"model": tensors, "args": argparse.Namespace(lr=1.0), "epoch": 3}, tmp_path / "refer.pth")
    assert extract_state_dict(load_checkpoint(tmp_path / "refer.pth")).keys() == {"a.weight"}  # Namespace allowed
    torch.save({"meta": {"v": "1"}, "state_dict": {"module.a.weight": torch.ones(2)}}, tmp_path / "mm.pth")
    assert extract_state_dict(load_checkpoint(tmp_path / "mm.pth")).keys() == {"a.weight"}
    save_file(tensors, str(tmp_path / "w.safetensors"))
    assert load_checkpoint(tmp_path / "w.safetensors").keys() == {"a.weight"}
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "broken.pth")
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "absent.pth")


def test_vpd_convert_cli_round_trip(tmp_path, official, capsys):
    torch.save({"model": official}, tmp_path / "official.pth")
    assert main(["convert", str(tmp_path / "official.pth"), str(tmp_path / "converted")]) == 0
    assert "converted" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "converted")) == ["config.json", "model.safetensors"]
    loaded = VPDDepth.from_pretrained(tmp_path / "converted")
    direct = convert_vpd_depth(tmp_path / "official.pth")
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x, torch.tensor([4])).depth, direct(x, torch.tensor([4])).depth)
    assert main(["convert", str(tmp_path / "absent.pth"), str(tmp_path / "o")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
