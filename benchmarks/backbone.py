"""Forward time and peak memory of the full SD-1.5-size VPD depth model (random weights), as ratios.

Every row runs in a fresh process (so peak memory is that row's alone) and is printed next to its ratio to the plain
fp32 depth-model row of the same run (machines are noisy; only ratios compare across runs). Attention-map capture is
measured on the backbone with the 27 NYU class tokens as context, with capture off and on.

    python benchmarks/backbone.py                       # 480x480, batch 1, CPU
    python benchmarks/backbone.py --device cuda --batch-sizes 1 8 --dtypes fp32 bf16
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Row:
    label: str
    model: str  # "depth" or "backbone"
    dtype: str
    batch: int
    capture: bool = False


def peak_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    with open("/proc/self/status") as f:  # Linux: the process's peak resident set size
        line = next(line for line in f if line.startswith("VmHWM"))
    return int(line.split()[1]) / 2**20


def timed(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_row(row: Row, size: int, device: str, repeats: int, threads: int) -> tuple[float, float]:
    """Builds the row's model in this (fresh) process and measures it: (seconds, peak GiB)."""
    import dataclasses

    from vpd.data.classes import NYU_SCENE_CLASSES
    from vpd.modeling.backbone import BackboneConfig, VPDBackbone
    from vpd.modeling.depth import VPDDepth, VPDDepthConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    images = torch.rand(row.batch, 3, size, size, device=device)
    if row.model == "depth":
        model: torch.nn.Module = VPDDepth(VPDDepthConfig()).to(device).eval()
        ids = torch.zeros(row.batch, dtype=torch.long)

        def forward() -> object:
            return model(images, ids).depth

    else:
        config = BackboneConfig(class_names=NYU_SCENE_CLASSES, conditioning="classes")
        model = VPDBackbone(dataclasses.replace(config, attention_maps=row.capture)).to(device).eval()

        def forward() -> object:
            return model(images).features

    dtype = AUTOCAST[row.dtype]
    device_type = "cuda" if device.startswith("cuda") else "cpu"

    def call() -> object:
        with torch.inference_mode(), torch.autocast(device_type, dtype=dtype) if dtype else nullcontext():
            return forward()

    seconds = timed(call, device, repeats)
    return seconds, peak_gib(device)


def emulated_ratio(dtype: torch.dtype, size: int = 512) -> float:
    """How many times slower a ``size``-square GEMM runs in ``dtype`` than in fp32 on this CPU (a short probe)."""
    a = torch.randn(size, size)
    b = a.to(dtype)
    return timed(lambda: b @ b, "cpu", 1) / timed(lambda: a @ a, "cpu", 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=sorted(AUTOCAST))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-capture", action="store_true", help="skip the attention-map capture rows")
    parser.add_argument("--force", action="store_true", help="run bf16/fp16 on CPUs that only emulate them")
    args = parser.parse_args()
    threads = torch.get_num_threads()

    dtypes = [d for d in args.dtypes if d == "fp32"] + [d for d in args.dtypes if d != "fp32"]
    if "fp32" not in dtypes:
        dtypes.insert(0, "fp32")  # the baseline every ratio refers to
    if args.device == "cpu" and not args.force:
        for name in [d for d in dtypes if d != "fp32"]:
            ratio = emulated_ratio(AUTOCAST[name])  # type: ignore[arg-type]
            if ratio > 4:  # no native half-precision GEMM (AVX2-only x86): a forward would take tens of minutes
                print(
                    f"{name} autocast skipped: a {name} GEMM is {ratio:.0f}x slower than fp32 on this CPU "
                    f"({torch.backends.cpu.get_cpu_capability()}, no native {name}); --force runs it anyway"
                )
                dtypes.remove(name)

    rows = [Row(f"depth model {d}", "depth", d, b) for b in args.batch_sizes for d in dtypes]
    if not args.skip_capture:
        b = args.batch_sizes[0]
        rows += [Row(f"backbone fp32, capture {s}", "backbone", "fp32", b, s == "on") for s in ("off", "on")]

    size = f"{args.size}x{args.size}"
    print(f"VPD depth model at SD-1.5 size (906M parameters), {size}, {args.device}, {threads} threads")
    context = multiprocessing.get_context("spawn")
    results = []
    for row in rows:
        with context.Pool(1) as pool:
            results.append(pool.apply(run_row, (row, args.size, args.device, args.repeats, threads)))
    base_seconds, base_peak = results[0]
    print(f"{'run':34s} {'batch':>5s} {'seconds':>8s} {'x fp32':>7s} {'img/s':>7s} {'peak GiB':>9s} {'x fp32':>7s}")
    for row, (seconds, peak) in zip(rows, results):
        print(
            f"{row.label:34s} {row.batch:5d} {seconds:8.2f} {seconds / base_seconds:7.2f} {row.batch / seconds:7.2f}"
            f" {peak:9.2f} {peak / base_peak:7.2f}"
        )


if __name__ == "__main__":
    main()
