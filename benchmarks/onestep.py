"""The one-step forward at Stable Diffusion 2.1 size (random weights): VAE encode, UNet and VAE decode timed
separately, as ratios to the VPD depth forward (SD-1.5 size, 480x480) measured in the same run.

Each model runs in a fresh process (so peak memory is its own); the one-step row is GenPercept's preset (4-channel
UNet at t = 1, VAE decoder readout) at the projects' default processing resolution, 768 on the longer side.

    python benchmarks/onestep.py                      # 768x768, CPU
    python benchmarks/onestep.py --size 576 --device cuda --dtypes fp32 bf16 --batch-sizes 1 8
"""

from __future__ import annotations

import argparse
import multiprocessing
from contextlib import nullcontext

import torch

from backbone import AUTOCAST, cpu_line, emulated_ratio, peak_gib, timed


def vpd_depth(size: int, device: str, dtype: str, repeats: int, threads: int, batch: int) -> dict[str, float]:
    from vpd.modeling.depth import VPDDepth, VPDDepthConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = VPDDepth(VPDDepthConfig()).to(device).eval()
    images = torch.rand(batch, 3, size, size, device=device)
    ids = torch.zeros(batch, dtype=torch.long, device=device)
    total = timed(_autocast(lambda: model(images, ids).depth, device, dtype), device, repeats)
    return {"total": total, "peak": peak_gib(device)}


def onestep(size: int, device: str, dtype: str, repeats: int, threads: int, batch: int) -> dict[str, float]:
    from vpd.modeling.onestep import OneStepModel, preset_config
    from vpd.modeling.stable_diffusion import SD21_UNET_CONFIG, SD_VAE_CONFIG

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = preset_config("genpercept", "depth", SD21_UNET_CONFIG, SD_VAE_CONFIG)
    model = OneStepModel(config, empty_text_embedding=torch.randn(1, 2, 1024)).to(device).eval()
    images = torch.rand(batch, 3, size, size, device=device)
    latent = torch.randn(batch, 4, size // 8, size // 8, device=device)
    parts = {
        "encode": lambda: model.encode(images),
        "unet": lambda: model.run_unet(latent),
        "decode": lambda: model.vae.decode(latent / config.latent_scale).sample,
        "total": lambda: model(images).prediction,
    }
    result = {name: timed(_autocast(fn, device, dtype), device, repeats) for name, fn in parts.items()}
    result["peak"] = peak_gib(device)
    return result


def _autocast(fn, device: str, dtype: str):  # type: ignore[no-untyped-def]
    cast = AUTOCAST[dtype]
    device_type = "cuda" if device.startswith("cuda") else "cpu"

    def call() -> object:
        with torch.inference_mode(), torch.autocast(device_type, dtype=cast) if cast else nullcontext():
            return fn()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=768, help="one-step processing resolution (square)")
    parser.add_argument("--vpd-size", type=int, default=480, help="the VPD depth baseline's image size")
    parser.add_argument("--dtypes", nargs="+", default=["fp32"], choices=sorted(AUTOCAST))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--force", action="store_true", help="run bf16/fp16 on CPUs that only emulate them")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    dtypes = ["fp32"] + [d for d in args.dtypes if d != "fp32"]
    if args.device == "cpu" and not args.force:
        for name in dtypes[1:]:
            ratio = emulated_ratio(AUTOCAST[name])  # type: ignore[arg-type]
            if ratio > 4:
                print(f"{name} skipped: a {name} GEMM is {ratio:.0f}x slower than fp32 on this CPU (--force runs it)")
                dtypes.remove(name)
    print(cpu_line())
    context = multiprocessing.get_context("spawn")
    for batch in args.batch_sizes:
        with context.Pool(1) as pool:
            base = pool.apply(vpd_depth, (args.vpd_size, args.device, "fp32", args.repeats, threads, batch))
        print(f"baseline: VPD depth fp32 (SD-1.5 size) at {args.vpd_size}x{args.vpd_size}, batch {batch}: "
              f"{base['total']:.2f} s ({batch / base['total']:.2f} images/s), peak {base['peak']:.2f} GiB")  # fmt: skip
        print(f"{'one-step (GenPercept, SD-2.1 size)':38s} {'batch':>5s} {'seconds':>8s} {'x VPD':>7s} {'img/s':>7s}")
        for dtype in dtypes:
            with context.Pool(1) as pool:
                result = pool.apply(onestep, (args.size, args.device, dtype, args.repeats, threads, batch))
            for part in ("encode", "unet", "decode", "total"):
                label = f"{dtype} {args.size}x{args.size} {'VAE ' if part != 'unet' and part != 'total' else ''}{part}"
                seconds = result[part]
                print(f"{label:38s} {batch:5d} {seconds:8.2f} {seconds / base['total']:7.2f} {batch / seconds:7.2f}")
            peak = f"{result['peak']:8.2f} {result['peak'] / base['peak']:7.2f}"
            print(f"{dtype + ' peak memory (GiB)':38s} {batch:5d} {peak}")


if __name__ == "__main__":
    main()
