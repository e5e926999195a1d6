"""The backbone contract: taps, padding, contexts, attention-map capture, frozen VAE, gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from vpd.modeling.attention import AttentionMapProcessor
from vpd.modeling.backbone import BackboneConfig, VPDBackbone
from vpd.modeling.stable_diffusion import TINY_UNET_CONFIG, TINY_VAE_CONFIG

CLASSES = ("kitchen", "bedroom", "office")


def make(**overrides) -> VPDBackbone:
    torch.manual_seed(0)
    config = BackboneConfig(unet=dict(TINY_UNET_CONFIG), vae=dict(TINY_VAE_CONFIG), class_names=CLASSES)
    backbone = VPDBackbone(dataclasses.replace(config, **overrides))
    backbone.class_embeddings.normal_()
    return backbone.eval()


@pytest.mark.parametrize(("height", "width"), [(64, 64), (100, 130), (128, 192)])
def test_features_at_strides_8_to_64_of_the_padded_image(height, width):
    backbone = make()
    out = backbone(torch.rand(2, 3, height, width), class_ids=torch.tensor([0, 2]))
    pad_h, pad_w = -(-height // 64) * 64, -(-width // 64) * 64
    assert out.image_size == (height, width) and out.padded_size == (pad_h, pad_w)
    channels = TINY_UNET_CONFIG["block_out_channels"]
    for feature, stride, c in zip(out.features, (8, 16, 32, 64), channels):
        assert feature.shape == (2, c, pad_h // stride, pad_w // stride)
    assert out.attention_maps is None


def test_taps_read_inside_the_up_blocks():
    """stride 16/32/64 come from the up blocks' second layer, i.e. before each block's upsampler."""
    backbone = make()
    seen = {}
    unet = backbone.unet

    def keep(name):
        def hook(module, args, output):
            seen[name] = output[0] if isinstance(output, tuple) else output

        return hook

    hooks = [
        unet.up_blocks[0].resnets[1].register_forward_hook(keep("s64")),
        unet.up_blocks[1].attentions[1].register_forward_hook(keep("s32")),
        unet.up_blocks[2].attentions[1].register_forward_hook(keep("s16")),
        unet.up_blocks[3].register_forward_hook(keep("s8")),
    ]
    out = backbone(torch.rand(1, 3, 128, 128), class_ids=torch.tensor([1]))
    for h in hooks:
        h.remove()
    for name, feature in zip(("s8", "s16", "s32", "s64"), out.features):
        assert torch.equal(feature, seen[name]), name


def test_input_mapping_padding_and_posterior_mean():
    backbone = make()
    captured = {}
    backbone.vae.encoder.register_forward_pre_hook(lambda m, a: captured.update(x=a[0]))
    backbone.unet.register_forward_pre_hook(lambda m, a: captured.update(latents=a[0]))
    images = torch.rand(1, 3, 70, 50)
    backbone(images, class_ids=torch.tensor([0]))
    x = captured["x"]
    assert x.shape == (1, 3, 128, 64) and x.is_contiguous()
    torch.testing.assert_close(x[..., :70, :50], images * 2 - 1)
    assert torch.all(x[..., 70:, :] == 0) and torch.all(x[..., :, 50:] == 0)  # zeros in [-1, 1] space
    moments = backbone.vae.quant_conv(backbone.vae.encoder(x))
    torch.testing.assert_close(captured["latents"], moments[:, :4])  # the mode, unscaled (official)


def test_scale_latents_and_timestep_are_config_fields():
    seen = {}
    backbone = make(scale_latents=True, timestep=7)
    backbone.unet.register_forward_pre_hook(lambda m, a: seen.update(latents=a[0], t=a[1]))
    x = torch.rand(1, 3, 64, 64)
    backbone(x, class_ids=torch.tensor([0]))
    plain = {}
    other = make()
    other.unet.register_forward_pre_hook(lambda m, a: plain.update(latents=a[0]))
    other(x, class_ids=torch.tensor([0]))
    torch.testing.assert_close(seen["latents"], plain["latents"] * TINY_VAE_CONFIG["scaling_factor"])
    assert int(seen["t"]) == 7


def test_scene_context_one_token_and_mean_fallback():
    backbone = make()
    ctx = backbone.context(3, torch.tensor([0, 2, -1]))
    assert ctx.shape == (3, 1, TINY_UNET_CONFIG["cross_attention_dim"])
    adapter = backbone.text_adapter
    emb = backbone.class_embeddings
    torch.testing.assert_close(ctx[0, 0], adapter(emb[0]))
    torch.testing.assert_close(ctx[2, 0], adapter(emb.mean(0)))
    torch.testing.assert_close(backbone.context(1, None)[0, 0], adapter(emb.mean(0)))
    with pytest.raises(ValueError, match=r"class_ids must lie in \[-1, 2\]"):
        backbone.context(1, torch.tensor([3]))
    with pytest.raises(ValueError, match="expected 2 ids"):
        backbone.context(2, torch.tensor([0]))


def test_classes_and_text_contexts():
    classes = make(conditioning="classes").context(2)
    assert classes.shape == (2, len(CLASSES), 32)
    text_backbone = make(conditioning="text", class_names=())
    tokens = torch.randn(2, 5, 32)
    torch.testing.assert_close(text_backbone.context(2, text_embeddings=tokens), text_backbone.text_adapter(tokens))
    with pytest.raises(ValueError, match=r"text_embeddings: expected \[2, L, 32\]"):
        text_backbone.context(2, text_embeddings=torch.randn(5, 32))
    with pytest.raises(ValueError, match="needs class_names"):
        make(conditioning="classes", class_names=())


def deep_unet() -> dict:
    return {**TINY_UNET_CONFIG, "layers_per_block": 2}  # SD's depth: 2 + 3 cross-attentions per level


def test_attention_maps_only_on_the_selected_layers():
    backbone = make(unet=deep_unet(), conditioning="classes", attention_maps=True)
    processors = backbone.unet.attn_processors
    capturing = sorted(n for n, p in processors.items() if isinstance(p, AttentionMapProcessor))
    expected = [
        f"{block}.attentions.{i}.transformer_blocks.0.attn2.processor"
        for block, n in (("down_blocks.1", 2), ("down_blocks.2", 2), ("up_blocks.1", 3), ("up_blocks.2", 3))
        for i in range(n)
    ]
    assert capturing == sorted(expected)
    assert all(isinstance(p, AttnProcessor2_0) for n, p in processors.items() if n not in expected)

    out = backbone(torch.rand(2, 3, 128, 128))
    maps16, maps32 = out.attention_maps
    assert maps16.shape == (2, 3, 8, 8) and maps32.shape == (2, 3, 4, 4)
    torch.testing.assert_close(maps16.sum(1), torch.ones(2, 8, 8))
    c = TINY_UNET_CONFIG["block_out_channels"]
    assert out.features[1].shape[1] == c[1] + 3 and out.features[2].shape[1] == c[2] + 3
    assert backbone.config.feature_channels == (c[0], c[1] + 3, c[2] + 3, c[3])
    torch.testing.assert_close(out.features[1][:, -3:], maps16)


def test_capture_leaves_features_unchanged():
    """The map-storing processor computes the same attention as SDPA."""
    x = torch.rand(1, 3, 128, 128)
    plain = make(unet=deep_unet(), conditioning="classes")(x)
    captured = make(unet=deep_unet(), conditioning="classes", attention_maps=True)(x)
    for a, b in zip(plain.features, captured.features):
        torch.testing.assert_close(b[:, : a.shape[1]], a, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("keep_grad", [False, True])
def test_training_with_gradient_checkpointing(keep_grad):
    backbone = make(unet=deep_unet(), conditioning="classes", attention_maps=True, attention_map_grad=keep_grad)
    backbone.train()
    backbone.enable_gradient_checkpointing()
    stored = []
    for proc in backbone.unet.attn_processors.values():
        if isinstance(proc, AttentionMapProcessor):
            store = proc.store
    out = backbone(torch.rand(1, 3, 64, 64))
    assert out.attention_maps[0].requires_grad is keep_grad
    loss = sum(f.float().pow(2).mean() for f in out.features)
    stored.append(len(store))
    loss.backward()
    assert all(p.grad is None for p in backbone.vae.parameters())  # frozen, no gradient
    assert all(not p.requires_grad for p in backbone.vae.parameters())
    unet_grads = [p.grad for n, p in backbone.unet.named_parameters() if "up_blocks.0" in n or "down_blocks.0" in n]
    assert all(g is not None and torch.isfinite(g).all() for g in unet_grads)
    assert backbone.text_adapter.gamma.grad is not None
    assert stored == [0]  # maps are released after every forward, never accumulated


def test_rejects_unets_vpd_cannot_tap():
    with pytest.raises(ValueError, match="4 resolution levels"):
        make(
            unet={
                **TINY_UNET_CONFIG,
                "block_out_channels": [32, 64, 64],
                "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            }
        )
    with pytest.raises(ValueError, match=r"images: expected \[B, 3, H, W\]"):
        make()(torch.rand(3, 64, 64))


def test_a_deep_copy_is_an_independent_working_model():
    import copy

    backbone = make(unet=deep_unet(), conditioning="classes", attention_maps=True)
    twin = copy.deepcopy(backbone)
    with torch.no_grad():
        twin.unet.conv_in.weight.add_(1.0)
    x = torch.rand(1, 3, 64, 64)
    a, b = backbone(x), twin(x)
    assert not torch.allclose(a.features[0], b.features[0])
    assert b.attention_maps is not None and b.features[1].shape == a.features[1].shape
