"""Winograd F(4x4, 3x3) against the direct convolution, one 3x3 convolution at a time (fp32, CPU, batch 1).

The shapes are those of the SD-1.5-size VPD depth model at a 512x512 input (VAE encoder, UNet, depth head) and a few
narrow ones. Each row prints the direct convolution's median time, Winograd's as a ratio to it (measured in the same
run), whether :mod:`vpd.modeling.winograd` uses it for that shape, and both errors against a float64 convolution::

    python benchmarks/winograd.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import functools

import torch
import torch.nn.functional as F

from backbone import timed
from vpd.modeling import winograd

#: (input channels, output channels, side): the depth model's 3x3 stride-1 convolutions at 512x512, then narrow ones.
SHAPES = [
    (128, 128, 512), (128, 256, 256), (256, 256, 256), (256, 512, 128), (512, 512, 128), (512, 512, 64),
    (320, 320, 64), (640, 320, 64), (640, 640, 32), (1280, 1280, 16), (1280, 1280, 8), (192, 192, 480),
    (3, 128, 512), (32, 32, 512), (64, 64, 256),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, CPU capability {capability}, {args.threads} threads")
    print(f"{'convolution':>22s} {'direct ms':>10s} {'Winograd x':>10s} {'used':>5s} {'error direct':>13s} "
          f"{'error Winograd':>15s}")  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for cin, cout, side in SHAPES:
            x = torch.randn(1, cin, side, side, generator=generator)
            weight = torch.randn(cout, cin, 3, 3, generator=generator) / (3 * cin**0.5)  # outputs of magnitude ~1
            bias = torch.randn(cout, generator=generator)
            filters = winograd.winograd_filter(weight)
            direct = timed(functools.partial(F.conv2d, x, weight, bias, padding=1), "cpu", args.repeats)
            fast = timed(functools.partial(winograd.winograd_conv2d, x, filters, bias), "cpu", args.repeats)
            expected = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
            errors = [
                (out.double() - expected).abs().max().item()
                for out in (F.conv2d(x, weight, bias, padding=1), winograd.winograd_conv2d(x, filters, bias))
            ]
            model, _ = winograd.use_winograd(torch.nn.Conv2d(cin, cout, 3, padding=1).eval())
            used = isinstance(model, winograd.WinogradConv2d) and model.uses_winograd(x)
            label = f"{cin}->{cout} @ {side}x{side}"
            print(f"{label:>22s} {direct * 1e3:10.1f} {fast / direct:10.2f} {'yes' if used else 'no':>5s} "
                  f"{errors[0]:13.1e} {errors[1]:15.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
