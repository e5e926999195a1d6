"""What training's latent cache (``train.latent_cache``) saves: one training forward + backward with the frozen VAE
encoder run every step, and with its output read from a warm cache, as a ratio measured in the same process. Models
at full size with random weights: VPD depth (SD-1.5 UNet and head trained) or the one-step GenPercept preset (SD-2.1
UNet trained, the VAE decoder in the loss's graph).

    python benchmarks/latent_cache.py                              # VPD depth, 256x256, batch 1, CPU
    python benchmarks/latent_cache.py --model onestep --size 512 --device cuda
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from backbone import cpu_line, peak_gib, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("vpd-depth", "onestep"), default="vpd-depth")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from vpd.modeling.depth import VPDDepth, VPDDepthConfig
    from vpd.modeling.onestep import OneStepModel, preset_config
    from vpd.modeling.stable_diffusion import SD21_UNET_CONFIG, SD_VAE_CONFIG
    from vpd.training.latent_cache import attach

    torch.manual_seed(0)
    images = torch.rand(args.batch_size, 3, args.size, args.size, device=args.device)
    model: torch.nn.Module
    if args.model == "onestep":
        config = preset_config("genpercept", "depth", SD21_UNET_CONFIG, SD_VAE_CONFIG)
        model = OneStepModel(config, empty_text_embedding=torch.randn(1, 2, 1024)).to(args.device).train()
        model.vae.requires_grad_(False)  # as in training: the VAE is frozen, the UNet learns
        name = "one-step GenPercept (SD 2.1 size)"

        def loss() -> torch.Tensor:
            return model(images).raw.float().square().mean()
    else:
        model = VPDDepth(VPDDepthConfig()).to(args.device).train()  # the backbone keeps its VAE frozen
        name = "VPD depth (SD 1.5 size)"

        def loss() -> torch.Tensor:
            return model(images).depth.float().mean()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss().backward()

    print(cpu_line() if args.device == "cpu" else torch.cuda.get_device_name(args.device))
    print(f"{name}, training forward + backward, {args.size}x{args.size}, "
          f"batch {args.batch_size}, median of {args.repeats}")  # fmt: skip
    plain = timed(step, args.device, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        (cache,) = attach(model, folder)
        step()  # fills the cache
        cached = timed(step, args.device, args.repeats)
    print(f"{'encoder every step':24s} {plain:8.2f} s  1.00x")
    print(f"{'latents from the cache':24s} {cached:8.2f} s  {cached / plain:.2f}x   ({cache.summary()})")
    print(f"peak memory {peak_gib(args.device):.2f} GiB")


if __name__ == "__main__":
    main()
