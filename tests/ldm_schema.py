"""Key/shape schemas of CompVis ldm checkpoints (UNet and AutoencoderKL), so tests can write real single-file
Stable Diffusion checkpoints for tiny models. Checked against the official manifests in tests/test_stable_diffusion.py.
"""

from __future__ import annotations

from collections.abc import Iterator

Shape = tuple[int, ...]


def _norm(prefix: str, c: int) -> Iterator[tuple[str, Shape]]:
    yield f"{prefix}.weight", (c,)
    yield f"{prefix}.bias", (c,)


def _conv(prefix: str, c_out: int, c_in: int, k: int = 3, bias: bool = True) -> Iterator[tuple[str, Shape]]:
    yield f"{prefix}.weight", (c_out, c_in, k, k)
    if bias:
        yield f"{prefix}.bias", (c_out,)


def _linear(prefix: str, c_out: int, c_in: int, bias: bool = True) -> Iterator[tuple[str, Shape]]:
    yield f"{prefix}.weight", (c_out, c_in)
    if bias:
        yield f"{prefix}.bias", (c_out,)


def _resblock(p: str, c_in: int, c_out: int, emb: int) -> Iterator[tuple[str, Shape]]:
    yield from _norm(f"{p}.in_layers.0", c_in)
    yield from _conv(f"{p}.in_layers.2", c_out, c_in)
    yield from _linear(f"{p}.emb_layers.1", c_out, emb)
    yield from _norm(f"{p}.out_layers.0", c_out)
    yield from _conv(f"{p}.out_layers.3", c_out, c_out)
    if c_in != c_out:
        yield from _conv(f"{p}.skip_connection", c_out, c_in, 1)


def _transformer(p: str, c: int, context: int) -> Iterator[tuple[str, Shape]]:
    yield from _norm(f"{p}.norm", c)
    yield from _conv(f"{p}.proj_in", c, c, 1)
    t = f"{p}.transformer_blocks.0"
    for attn, kv in (("attn1", c), ("attn2", context)):
        yield from _linear(f"{t}.{attn}.to_q", c, c, bias=False)
        yield from _linear(f"{t}.{attn}.to_k", c, kv, bias=False)
        yield from _linear(f"{t}.{attn}.to_v", c, kv, bias=False)
        yield from _linear(f"{t}.{attn}.to_out.0", c, c)
    yield from _linear(f"{t}.ff.net.0.proj", 8 * c, c)
    yield from _linear(f"{t}.ff.net.2", c, 4 * c)
    for i in (1, 2, 3):
        yield from _norm(f"{t}.norm{i}", c)
    yield from _conv(f"{p}.proj_out", c, c, 1)


def unet_schema(
    model_channels: int,
    channel_mult: list[int],
    num_res_blocks: int,
    attention_levels: set[int],
    context_dim: int,
    in_channels: int = 4,
    out_channels: int = 4,
) -> dict[str, Shape]:
    """ldm ``UNetModel`` (SD-1.x style: spatial transformers with conv projections, depth 1)."""
    mc, emb = model_channels, 4 * model_channels
    keys: dict[str, Shape] = {}
    keys.update(_linear("time_embed.0", emb, mc))
    keys.update(_linear("time_embed.2", emb, emb))
    keys.update(_conv("input_blocks.0.0", mc, in_channels))
    chans, ch, idx = [mc], mc, 0
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            idx += 1
            keys.update(_resblock(f"input_blocks.{idx}.0", ch, mc * mult, emb))
            ch = mc * mult
            if level in attention_levels:
                keys.update(_transformer(f"input_blocks.{idx}.1", ch, context_dim))
            chans.append(ch)
        if level != len(channel_mult) - 1:
            idx += 1
            keys.update(_conv(f"input_blocks.{idx}.0.op", ch, ch))
            chans.append(ch)
    keys.update(_resblock("middle_block.0", ch, ch, emb))
    keys.update(_transformer("middle_block.1", ch, context_dim))
    keys.update(_resblock("middle_block.2", ch, ch, emb))
    idx = 0
    for level in reversed(range(len(channel_mult))):
        for i in range(num_res_blocks + 1):
            skip = chans.pop()
            keys.update(_resblock(f"output_blocks.{idx}.0", ch + skip, mc * channel_mult[level], emb))
            ch = mc * channel_mult[level]
            layer = 1
            if level in attention_levels:
                keys.update(_transformer(f"output_blocks.{idx}.1", ch, context_dim))
                layer = 2
            if level and i == num_res_blocks:
                keys.update(_conv(f"output_blocks.{idx}.{layer}.conv", ch, ch))
            idx += 1
    keys.update(_norm("out.0", mc))
    keys.update(_conv("out.2", out_channels, mc))
    return keys


def _vae_resblock(p: str, c_in: int, c_out: int) -> Iterator[tuple[str, Shape]]:
    yield from _norm(f"{p}.norm1", c_in)
    yield from _conv(f"{p}.conv1", c_out, c_in)
    yield from _norm(f"{p}.norm2", c_out)
    yield from _conv(f"{p}.conv2", c_out, c_out)
    if c_in != c_out:
        yield from _conv(f"{p}.nin_shortcut", c_out, c_in, 1)


def _vae_mid(p: str, c: int) -> Iterator[tuple[str, Shape]]:
    yield from _vae_resblock(f"{p}.mid.block_1", c, c)
    yield from _norm(f"{p}.mid.attn_1.norm", c)
    for name in ("q", "k", "v", "proj_out"):
        yield from _conv(f"{p}.mid.attn_1.{name}", c, c, 1)
    yield from _vae_resblock(f"{p}.mid.block_2", c, c)


def vae_schema(ch: int, ch_mult: list[int], num_res_blocks: int, z: int = 4, decoder: bool = True) -> dict[str, Shape]:
    """ldm ``AutoencoderKL`` (no attention inside the levels, as in SD)."""
    keys: dict[str, Shape] = {}
    keys.update(_conv("encoder.conv_in", ch, 3))
    c = ch
    for i, mult in enumerate(ch_mult):
        for j in range(num_res_blocks):
            keys.update(_vae_resblock(f"encoder.down.{i}.block.{j}", c, ch * mult))
            c = ch * mult
        if i != len(ch_mult) - 1:
            keys.update(_conv(f"encoder.down.{i}.downsample.conv", c, c))
    keys.update(_vae_mid("encoder", c))
    keys.update(_norm("encoder.norm_out", c))
    keys.update(_conv("encoder.conv_out", 2 * z, c))
    keys.update(_conv("quant_conv", 2 * z, 2 * z, 1))
    keys.update(_conv("post_quant_conv", z, z, 1))
    if decoder:
        c = ch * ch_mult[-1]
        keys.update(_conv("decoder.conv_in", c, z))
        keys.update(_vae_mid("decoder", c))
        for i in reversed(range(len(ch_mult))):
            for j in range(num_res_blocks + 1):
                keys.update(_vae_resblock(f"decoder.up.{i}.block.{j}", c, ch * ch_mult[i]))
                c = ch * ch_mult[i]
            if i != 0:
                keys.update(_conv(f"decoder.up.{i}.upsample.conv", c, c))
        keys.update(_norm("decoder.norm_out", c))
        keys.update(_conv("decoder.conv_out", 3, c))
    return keys
