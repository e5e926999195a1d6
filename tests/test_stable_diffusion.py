"""Loading Stable Diffusion: diffusers folder, hub id (offline cache), single-file ldm checkpoints; CLIP class names."""

from __future__ import annotations

import pytest
import torch
import yaml
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file

from ldm_schema import unet_schema, vae_schema
from reference import manifest
from vpd.convert.ldm import ldm_unet_key_map, ldm_vae_key_map
from vpd.modeling.depth import build_vpd_depth, tiny_vpd_depth_config
from vpd.modeling.stable_diffusion import TINY_UNET_CONFIG, TINY_VAE_CONFIG, load_stable_diffusion
from vpd.modeling.text_encoder import CLIP_IMAGENET_TEMPLATES, encode_class_names

# ldm always uses 32-group GroupNorm, so a tiny *single-file* model needs widths divisible by 32.
LDM_UNET = {**TINY_UNET_CONFIG, "norm_num_groups": 32}
LDM_VAE = {**TINY_VAE_CONFIG, "block_out_channels": [32, 32, 32, 32], "norm_num_groups": 32}
CLASSES = ("kitchen", "living_room")


@pytest.mark.parametrize("name", ["vpd_seg_tiny", "vpd_depth_full"])
def test_ldm_schema_matches_the_official_manifests(name):
    m = manifest(name)
    seg = name.startswith("vpd_seg")
    unet_prefix = "unet.unet.diffusion_model." if seg else "encoder.unet.unet.diffusion_model."
    vae_prefix = "encoder_vq." if seg else "encoder.encoder_vq."
    u, v = m["config"]["unet"], m["config"]["vae"]
    levels = {{1: 0, 2: 1, 4: 2, 8: 3}[r] for r in u["attention_resolutions"]}
    unet = unet_schema(u["model_channels"], u["channel_mult"], u["num_res_blocks"], levels, u["context_dim"])
    if not seg:
        unet = {k: s for k, s in unet.items() if not k.startswith("out.")}  # VPD depth deletes `out`
    assert {k[len(unet_prefix) :]: tuple(s) for k, s, _ in m["tensors"] if k.startswith(unet_prefix)} == unet
    vae = vae_schema(v["ch"], v["ch_mult"], v["num_res_blocks"], decoder=False)
    assert {k[len(vae_prefix) :]: tuple(s) for k, s, _ in m["tensors"] if k.startswith(vae_prefix)} == vae


def tiny_sd(unet_config=TINY_UNET_CONFIG, vae_config=TINY_VAE_CONFIG):
    torch.manual_seed(1)
    return UNet2DConditionModel.from_config(unet_config), AutoencoderKL.from_config(vae_config)


def save_sd_folder(path, unet, vae, clip=None):
    unet.save_pretrained(path / "unet")
    vae.save_pretrained(path / "vae")
    if clip is not None:
        clip[0].save_pretrained(path / "text_encoder")
        clip[1].save_pretrained(path / "tokenizer")
    return path


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_diffusers_folder_and_clip_class_embeddings(tmp_path, tiny_clip):
    unet, vae = tiny_sd()
    folder = save_sd_folder(tmp_path / "sd", unet, vae, tiny_clip)
    config = tiny_vpd_depth_config(class_names=CLASSES)
    model = build_vpd_depth(config, stable_diffusion=folder)
    expected_unet = {k: v for k, v in unet.state_dict().items() if not k.startswith(("conv_norm_out", "conv_out"))}
    ours = model.backbone.unet.state_dict()
    assert ours.keys() == expected_unet.keys()
    assert all(torch.equal(ours[k], expected_unet[k]) for k in ours)
    assert torch.equal(model.backbone.vae.encoder.conv_in.weight, vae.encoder.conv_in.weight)
    assert model.config.backbone.unet["block_out_channels"] == TINY_UNET_CONFIG["block_out_channels"]
    expected = encode_class_names(CLASSES, *tiny_clip)
    torch.testing.assert_close(model.backbone.class_embeddings, expected)
    assert model(torch.rand(1, 3, 64, 64), torch.tensor([1])).depth.shape == (1, 1, 64, 64)


def test_hub_repo_id_resolves_from_the_local_cache(tmp_path, monkeypatch, tiny_clip):
    """A hub id loads exactly as on a user's machine; here from a cache laid out as huggingface_hub writes it."""
    import huggingface_hub.constants as constants

    unet, vae = tiny_sd()
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-sd"
    save_sd_folder(repo / "snapshots" / revision, unet, vae, tiny_clip)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    parts = load_stable_diffusion("tiny-org/tiny-sd", local_files_only=True)
    assert_same_weights(parts.unet, unet)
    model = build_vpd_depth(
        tiny_vpd_depth_config(class_names=CLASSES), stable_diffusion="tiny-org/tiny-sd", local_files_only=True
    )
    torch.testing.assert_close(model.backbone.class_embeddings, encode_class_names(CLASSES, *tiny_clip))
    with pytest.raises(OSError, match="not a local diffusers folder nor a reachable hub repo id"):
        load_stable_diffusion("tiny-org/absent", local_files_only=True)


def ldm_checkpoint(unet: UNet2DConditionModel, vae: AutoencoderKL) -> dict[str, torch.Tensor]:
    """The models' weights under CompVis ldm names, as in an original SD .ckpt."""
    levels = {i for i, t in enumerate(LDM_UNET["down_block_types"]) if t.startswith("CrossAttn")}
    mc = LDM_UNET["block_out_channels"][0]
    mult = [c // mc for c in LDM_UNET["block_out_channels"]]
    unet_keys = unet_schema(mc, mult, LDM_UNET["layers_per_block"], levels, LDM_UNET["cross_attention_dim"])
    vch = LDM_VAE["block_out_channels"]
    vae_keys = vae_schema(vch[0], [c // vch[0] for c in vch], LDM_VAE["layers_per_block"])
    unet_map = ldm_unet_key_map(list(unet_keys), LDM_UNET)
    vae_map = ldm_vae_key_map(list(vae_keys), LDM_VAE)
    unet_sd, vae_sd = unet.state_dict(), vae.state_dict()
    out = {f"model.diffusion_model.{k}": unet_sd[unet_map[k]].reshape(s) for k, s in unet_keys.items()}
    out.update({f"first_stage_model.{k}": vae_sd[vae_map[k]].reshape(s) for k, s in vae_keys.items()})
    return out


def original_config() -> dict:
    u, v = LDM_UNET, LDM_VAE
    return {
        "model": {
            "params": {
                "scale_factor": 0.18215,
                "unet_config": {
                    "params": {
                        "in_channels": 4,
                        "out_channels": 4,
                        "model_channels": u["block_out_channels"][0],
                        "attention_resolutions": [1, 2, 4],
                        "num_res_blocks": u["layers_per_block"],
                        "channel_mult": [c // u["block_out_channels"][0] for c in u["block_out_channels"]],
                        "num_heads": u["attention_head_dim"],
                        "use_spatial_transformer": True,
                        "transformer_depth": 1,
                        "context_dim": u["cross_attention_dim"],
                        "legacy": False,
                    }
                },
                "first_stage_config": {
                    "params": {
                        "embed_dim": 4,
                        "ddconfig": {
                            "double_z": True,
                            "z_channels": 4,
                            "resolution": 256,
                            "in_channels": 3,
                            "out_ch": 3,
                            "ch": v["block_out_channels"][0],
                            "ch_mult": [c // v["block_out_channels"][0] for c in v["block_out_channels"]],
                            "num_res_blocks": v["layers_per_block"],
                            "attn_resolutions": [],
                            "dropout": 0.0,
                        },
                    }
                },
            }
        }
    }


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_single_file_checkpoint(tmp_path, suffix, tiny_clip):
    unet, vae = tiny_sd(LDM_UNET, LDM_VAE)
    checkpoint = ldm_checkpoint(unet, vae)
    path = tmp_path / f"tiny-sd{suffix}"
    if suffix == ".safetensors":
        save_file(checkpoint, str(path))
    else:
        torch.save({"state_dict": checkpoint, "global_step": 1}, path)
    config_path = tmp_path / "v1-inference-tiny.yaml"
    config_path.write_text(yaml.safe_dump(original_config()))
    parts = load_stable_diffusion(path, original_config=str(config_path), local_files_only=True)
    assert_same_weights(parts.unet, unet)
    assert_same_weights(parts.vae, vae)
    clip_folder = tmp_path / "clip"
    tiny_clip[0].save_pretrained(clip_folder)
    tiny_clip[1].save_pretrained(clip_folder)
    config = tiny_vpd_depth_config(class_names=CLASSES)
    model = build_vpd_depth(
        config, stable_diffusion=path, text_encoder=clip_folder, original_config=str(config_path), local_files_only=True
    )
    assert torch.equal(model.backbone.unet.conv_in.weight, unet.conv_in.weight)
    with pytest.raises(ValueError, match="need a CLIP text encoder"):
        build_vpd_depth(config, stable_diffusion=path, original_config=str(config_path), local_files_only=True)


def test_clear_errors_for_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        load_stable_diffusion(tmp_path / "missing.ckpt")
    (tmp_path / "notsd" / "unet").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="not a diffusers Stable Diffusion folder"):
        load_stable_diffusion(tmp_path / "notsd")


def test_encode_class_names_averages_pooled_prompts(tiny_clip):
    model, tokenizer = tiny_clip
    embeddings = encode_class_names(["living_room", "cafe"], model, tokenizer)
    assert embeddings.shape == (2, 32) and embeddings.dtype == torch.float32
    assert len(CLIP_IMAGENET_TEMPLATES) == 80
    prompts = [t.format("living room") for t in CLIP_IMAGENET_TEMPLATES]  # underscores read as spaces
    tokens = tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        pooled = model(input_ids=tokens.input_ids).pooler_output
    torch.testing.assert_close(embeddings[0], pooled.mean(0))
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_folder_without_text_encoder_asks_for_one(tmp_path):
    unet, vae = tiny_sd()
    folder = save_sd_folder(tmp_path / "sd", unet, vae)
    with pytest.raises(FileNotFoundError, match=r"no CLIP text encoder .*text_encoder="):
        build_vpd_depth(tiny_vpd_depth_config(class_names=CLASSES), stable_diffusion=folder)
    model = build_vpd_depth(
        tiny_vpd_depth_config(class_names=CLASSES), stable_diffusion=folder, class_embeddings="random"
    )
    assert model.backbone.class_embeddings.std() > 0.5


def test_model_vae_swaps_the_vae_weights_for_vpd_and_one_step_models(tmp_path):
    """``model.vae`` (diffusers' ``vae=``): a VAE folder, or an SD folder's ``vae/``, replaces the built model's VAE
    weights; VPD keeps only the encoder half, the DPT one-step model no decoder, the VAE-readout one all of it."""
    from runs import tiny_run_config
    from vpd.modeling.stable_diffusion import load_vae
    from vpd.training.config import load_run_config
    from vpd.training.trainer import Trainer

    _, vae = tiny_sd()
    vae.save_pretrained(tmp_path / "vae_only")
    save_sd_folder(tmp_path / "sd", *tiny_sd())
    assert_same_weights(load_vae(tmp_path / "sd"), vae)
    trainer = Trainer(tiny_run_config(tmp_path / "run", f"model.vae={tmp_path / 'vae_only'}"))
    encoder = trainer.accelerator.unwrap_model(trainer.model).backbone.vae
    assert_same_weights(encoder.encoder, vae.encoder)
    assert_same_weights(encoder.quant_conv, vae.quant_conv)

    for readout in ("dpt", "vae"):
        config = load_run_config(
            "demo_synthetic_onestep",
            [f"train.output_dir={tmp_path / readout}", f"model.readout={readout}", f"model.vae={tmp_path / 'sd'}",
             "data.train.args={num_scenes: 4, height: 32, width: 32, seed: 1}", "train.batch_size=2",
             "data.val=null", "train.eval_every=0", "train.progress=false"],
        )  # fmt: skip
        ours = Trainer(config).model.vae
        assert hasattr(ours, "decoder") == (readout == "vae")
        offered = vae.state_dict()
        assert all(torch.equal(t, offered[k]) for k, t in ours.state_dict().items())


def test_model_vae_refuses_another_architecture_and_bad_sources_in_one_line(tmp_path):
    from runs import tiny_run_config
    from vpd.configuration import ConfigError
    from vpd.modeling.stable_diffusion import load_vae
    from vpd.training.trainer import Trainer

    AutoencoderKL.from_config(LDM_VAE).save_pretrained(tmp_path / "wide")
    wrong = r"^model\.vae .*wide does not fit the model: .*encoder\.conv_in\.weight \(32, 3, 3, 3\) vs model \(16, "
    with pytest.raises(ValueError, match=wrong):
        Trainer(tiny_run_config(tmp_path / "run", f"model.vae={tmp_path / 'wide'}"))
    AutoencoderKL.from_config({**TINY_VAE_CONFIG, "scaling_factor": 0.13025}).save_pretrained(tmp_path / "xl")
    with pytest.raises(ConfigError, match=r"^model\.vae .*xl: its latents are scaled by 0\.13025, the model's by "):
        Trainer(tiny_run_config(tmp_path / "run", f"model.vae={tmp_path / 'xl'}"))
    with pytest.raises(FileNotFoundError, match="not a diffusers VAE folder"):
        load_vae(tmp_path)
    with pytest.raises(ValueError, match="not a single file"):
        load_vae(tmp_path / "vae.safetensors")
    with pytest.raises(OSError, match="not a local VAE folder nor a reachable hub repo id"):
        load_vae("tiny-org/absent", local_files_only=True)
