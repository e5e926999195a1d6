"""Forward time and peak memory of the full SD-1.5-size VPD models (random weights), as ratios.

Every row runs in a fresh process (so peak memory is that row's alone, loading included) and is printed next to its
ratio to the plain fp32 eager depth-model row of the same run and batch size (machines are noisy; only ratios compare
across runs). The depth model's variants load the same saved random weights (``from_pretrained``, straight into the
row's dtype): fp32 eager, fp32 eager with Winograd 3x3 convolutions (CPU), fp32 compiled (torch.compile; its first call
is printed apart) without and with weight freezing (where exact: ``compile_model(freeze=True)``), and frozen with
Winograd (CPU), bf16 weights eager and compiled (both ways), bf16 weights packed for oneDNN (``pack_weights``, what
the predictors do on the CPU) eager and compiled (CPU), and bf16 autocast over fp32 weights; each prints its largest
depth difference to the fp32 eager row.
Attention-map capture is measured on the backbone with the 27 NYU class tokens as context, with capture off and on. The
segmentation rows run the ADE20K model (150 class tokens, maps on) on a 512x512 image, and its sliding-window test (512
windows, stride 341) on a 512x683 image, the size of a typical ADE20K validation image after the official resize.

    python benchmarks/backbone.py                       # 480x480, batch 1, CPU
    python benchmarks/backbone.py --device cuda --batch-sizes 1 8 --dtypes fp32 bf16
    python benchmarks/backbone.py --skip-capture --skip-semantic --no-compile   # the precision rows only
    python benchmarks/backbone.py --skip-capture --skip-semantic --only Winograd  # the Winograd rows and the baseline
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Row:
    label: str
    model: str  # "depth" or "backbone"
    dtype: str
    batch: int
    capture: bool = False
    hw: tuple[int, int] | None = None  # the image size, when not --size square
    weights: str = "fp32"  # the depth model's stored dtype (fp32, bf16, fp16), loaded from the saved model
    compiled: bool = False
    frozen: bool = False  # with compiled: inductor's weight freezing where exact (vpd.inference.compiled)
    winograd: bool = False  # Winograd 3x3 convolutions where they pay (vpd.modeling.winograd), fp32 on the CPU
    packed: bool = False  # bf16 convolution weights packed for oneDNN in place (vpd.modeling.packed), CPU


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


def run_row(
    row: Row, size: int, device: str, repeats: int, threads: int, saved: str
) -> tuple[float, float, float | None, torch.Tensor | None]:
    """Builds the row's model in this (fresh) process (the depth model from ``saved``) and measures it: (seconds,
    peak GiB, seconds of the first, compiling call or None, the depth map or None)."""
    import dataclasses

    from vpd.data.classes import NYU_SCENE_CLASSES
    from vpd.modeling.backbone import BackboneConfig, VPDBackbone
    from vpd.modeling.depth import VPDDepth

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    height, width = row.hw or (size, size)
    images = torch.rand(row.batch, 3, height, width, device=device)
    if row.model in ("semantic", "semantic_slide"):
        from vpd.modeling.semantic import VPDSemantic, VPDSemanticConfig
        from vpd.tasks.semantic import SemanticEvalConfig, predict_segmentation

        model = VPDSemantic(VPDSemanticConfig()).to(device).eval()
        slide = SemanticEvalConfig(img_scale=None)  # the image is already at the official test size

        def forward() -> object:
            if row.model == "semantic":
                return model(images).logits
            return predict_segmentation(model, images, slide)

    elif row.model == "depth":
        from vpd.inference.compiled import compile_model
        from vpd.runtime import torch_dtypes

        weights = torch_dtypes()[row.weights]
        model: torch.nn.Module = VPDDepth.from_pretrained(saved, device=device, dtype=weights).eval()
        images = images.to(weights)
        ids = torch.zeros(row.batch, dtype=torch.long)
        if row.winograd:
            from vpd.modeling.winograd import use_winograd

            model = use_winograd(model)[0]
        if row.packed:
            from vpd.modeling.packed import pack_weights

            pack_weights(model)
        run = compile_model(model, freeze=row.frozen) if row.compiled else model

        def forward() -> object:
            return run(images, ids).depth

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

    first = None
    if row.compiled:
        tic = time.perf_counter()
        call()
        first = time.perf_counter() - tic
    seconds = timed(call, device, repeats)
    output = call()
    depth = output.float().cpu() if row.model == "depth" else None  # type: ignore[union-attr]
    return seconds, peak_gib(device), first, depth


def emulated_ratio(dtype: torch.dtype, size: int = 512) -> float:
    """How many times slower a ``size``-square GEMM runs in ``dtype`` than in fp32 on this CPU (a short probe)."""
    a = torch.randn(size, size)
    b = a.to(dtype)
    return timed(lambda: b @ b, "cpu", 1) / timed(lambda: a @ a, "cpu", 3)


def cpu_line() -> str:
    """The CPU, torch's CPU capability and the CPU's bf16 matrix units (vpd.runtime reads them from the CPU flags)."""
    from vpd.runtime import cpu_bf16_units, cpu_name

    units = cpu_bf16_units()
    bf16 = f"bf16 units: {units}" if units else "no bf16 matrix units (AMX / AVX512-BF16)"
    capability = torch.backends.cpu.get_cpu_capability()
    return f"CPU: {cpu_name()}; torch {torch.__version__}, CPU capability {capability}; {bf16}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=sorted(AUTOCAST))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-capture", action="store_true", help="skip the attention-map capture rows")
    parser.add_argument("--skip-semantic", action="store_true", help="skip the segmentation rows")
    parser.add_argument("--force", action="store_true", help="run bf16/fp16 on CPUs that only emulate them")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument(
        "--only", nargs="+", metavar="TEXT", help="only the rows whose label contains one of these (and the baseline)"
    )
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

    rows = []
    for b in args.batch_sizes:
        rows.append(Row("depth fp32 eager", "depth", "fp32", b))
        if args.device == "cpu":
            rows.append(Row("depth fp32 eager, Winograd", "depth", "fp32", b, winograd=True))
        if not args.no_compile:
            rows.append(Row("depth fp32 compiled", "depth", "fp32", b, compiled=True))
            rows.append(Row("depth fp32 compiled, frozen weights", "depth", "fp32", b, compiled=True, frozen=True))
            if args.device == "cpu":
                label = "depth fp32 compiled, frozen, Winograd"
                rows.append(Row(label, "depth", "fp32", b, compiled=True, frozen=True, winograd=True))
        for d in dtypes[1:]:
            rows.append(Row(f"depth {d} weights eager", "depth", "fp32", b, weights=d))
            if not args.no_compile:
                rows.append(Row(f"depth {d} weights compiled", "depth", "fp32", b, weights=d, compiled=True))
                label = f"depth {d} weights compiled, frozen"
                rows.append(Row(label, "depth", "fp32", b, weights=d, compiled=True, frozen=True))
            if args.device == "cpu" and d == "bf16":
                rows.append(Row(f"depth {d} weights eager, packed", "depth", "fp32", b, weights=d, packed=True))
                if not args.no_compile:
                    label = f"depth {d} weights compiled, packed"
                    rows.append(Row(label, "depth", "fp32", b, weights=d, compiled=True, packed=True))
            rows.append(Row(f"depth {d} autocast (fp32 weights)", "depth", d, b))
    if not args.skip_capture:
        b = args.batch_sizes[0]
        rows += [Row(f"backbone fp32, capture {s}", "backbone", "fp32", b, s == "on") for s in ("off", "on")]
    if not args.skip_semantic:
        b = args.batch_sizes[0]
        rows += [
            Row("semantic fp32, 512x512", "semantic", "fp32", b, hw=(512, 512)),
            Row("semantic fp32, slide 512x683", "semantic_slide", "fp32", b, hw=(512, 683)),
        ]

    if args.only:
        rows = [r for i, r in enumerate(rows) if i == 0 or any(text in r.label for text in args.only)]
    size = f"{args.size}x{args.size}"
    print(cpu_line())
    print(f"VPD depth model at SD-1.5 size (906M parameters), {size}, {args.device}, {threads} threads")
    context = multiprocessing.get_context("spawn")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        saved = str(Path(tmp) / "depth")
        with context.Pool(1) as pool:  # the random weights every depth row loads, saved once
            pool.apply(save_depth_model, (saved,))
        for row in rows:
            with context.Pool(1) as pool:
                results.append(pool.apply(run_row, (row, args.size, args.device, args.repeats, threads, saved)))
    # each row against the fp32 eager depth row of its batch size (the first one for the backbone / semantic rows)
    bases = {row.batch: result for row, result in zip(rows, results) if row.label == "depth fp32 eager"}
    header = f"{'run':38s} {'batch':>5s} {'seconds':>8s} {'x fp32':>7s} {'img/s':>7s} {'peak GiB':>9s} {'x fp32':>7s}"
    print(f"{header} {'max |d - fp32| m':>17s} {'1st call s':>10s}")
    for row, (seconds, peak, first, depth) in zip(rows, results):
        base_seconds, base_peak, _, base_depth = bases.get(row.batch, results[0])
        error = f"{(depth - base_depth).abs().max().item():17.2g}" if depth is not None else f"{'':17s}"
        print(
            f"{row.label:38s} {row.batch:5d} {seconds:8.3f} {seconds / base_seconds:7.2f} {row.batch / seconds:7.2f}"
            f" {peak:9.2f} {peak / base_peak:7.2f} {error} {'' if first is None else f'{first:10.1f}'}"
        )


def save_depth_model(folder: str) -> None:
    from vpd.modeling.depth import VPDDepth, VPDDepthConfig

    torch.manual_seed(0)
    model = VPDDepth(VPDDepthConfig())
    for module in model.head.modules():  # PyTorch's default init, not VPD's N(0, 0.001): depths that vary, so the
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):  # error column means something
            module.reset_parameters()
    model.save_pretrained(folder)


if __name__ == "__main__":
    main()
