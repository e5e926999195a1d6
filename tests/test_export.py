"""ONNX export: each exportable family's graph, run by onnxruntime, against the torch model (fp32: 1e-4 here, the
measured errors are ~1e-6; fp16: 1% of the logits' range), with a dynamic batch; the command line and its refusals."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vpd.cli import main
from vpd.inference.export import MapGraph, example_inputs, export_onnx, run_onnx

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")


def _lively(model: nn.Module) -> nn.Module:
    """PyTorch's default init for the heads' convolutions (VPD's N(0, 0.001) gives near-constant maps)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.weight.std() < 0.01:
            module.reset_parameters()
    return model.eval()


def _check(model: nn.Module, path: Path, height: int, width: int) -> float:
    """The largest difference between onnxruntime and torch at batch 1 and 3 (depth: class ids -1, 0, 1)."""
    errors = []
    for batch in (1, 3):
        example = example_inputs(model, batch, height, width, seed=batch)
        if example[1:] and example[1].dtype == torch.long:
            example[1] = torch.arange(batch) - 1  # -1: the mean class embedding
        with torch.inference_mode():
            expected = MapGraph(model, torch.float32)(*example).numpy()
        got = run_onnx(path, *(tensor.numpy() for tensor in example))
        assert got.shape == expected.shape and expected.std() > 1e-3
        errors.append(float(np.abs(got - expected).max()))
    return max(errors)


def test_semantic_and_onestep_export(tmp_path: Path) -> None:
    """The graphs as captured (optimize=False: onnxscript's optimiser is a third to 40% of each export's time; the
    command-line test below checks an optimised graph)."""
    from vpd.data.classes import ADE20K_CLASSES
    from vpd.modeling.onestep import OneStepModel, preset_config
    from vpd.modeling.semantic import VPDSemantic, tiny_vpd_semantic_config
    from vpd.tasks.onestep import _tiny_components

    torch.manual_seed(0)
    semantic = _lively(VPDSemantic(tiny_vpd_semantic_config(tuple(ADE20K_CLASSES[:5]))))
    path = export_onnx(semantic, tmp_path / "semantic.onnx", height=64, width=96, optimize=False)
    assert _check(semantic, path, 64, 96) < 1e-4
    half = export_onnx(semantic, tmp_path / "semantic16.onnx", height=64, width=96, dtype="fp16", optimize=False)
    stored = Counter()  # elements per ONNX data type: 10 = float16, 1 = float32
    for tensor in onnx.load(half).graph.initializer:
        stored[tensor.data_type] += int(np.prod(tensor.dims))
    assert stored[1] < 1e-3 * stored[10]  # the weights are stored in half precision
    scale = float(np.abs(MapGraph(semantic, torch.float32)(torch.rand(1, 3, 64, 96)).detach()).max())
    assert _check(semantic, half, 64, 96) < 1e-2 * scale
    assert next(semantic.parameters()).dtype == torch.float32  # the caller's model is left as it was
    # one-step: a VAE-decoder readout (E2E-FT normals: unit vectors, renormalised, so 1e-3), the DPT readout, and
    # Lotus-D, which samples its latent (the graph takes the noise as an input)
    for preset, target, tolerance in (("e2eft", "normals", 1e-3), ("genpercept-dpt", "depth", 1e-4),
                                      ("lotus-d", "depth", 1e-4)):  # fmt: skip
        onestep = _lively(OneStepModel(preset_config(preset, target, *_tiny_components(preset))))
        path = export_onnx(onestep, tmp_path / f"{preset}.onnx", height=64, width=64, optimize=False)
        assert _check(onestep, path, 64, 64) < tolerance, preset
    marigold = OneStepModel(preset_config("marigold", "depth", *_tiny_components("marigold")))
    with pytest.raises(ValueError, match="a Marigold model denoises in several scheduler steps"):
        export_onnx(marigold, tmp_path / "marigold.onnx", height=64, width=64)


def test_cli_exports_a_depth_model_and_checks_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vpd.inference.export import export_onnx as _  # noqa: F401 (import cost outside the timed call)
    from vpd.modeling.depth import VPDDepth, tiny_vpd_depth_config

    torch.manual_seed(0)
    model = _lively(VPDDepth(tiny_vpd_depth_config()))
    folder = model.save_pretrained(tmp_path / "depth")
    out = tmp_path / "onnx" / "depth.onnx"
    assert main(["export", str(folder), str(out), "--height", "64", "--width", "96"]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime vs torch on a random image: max abs difference" in printed
    assert float(printed.rsplit("difference", 1)[1]) < 1e-4
    assert _check(model, out, 64, 96) < 1e-4
    assert not [p for p in out.parent.iterdir() if p.name != "depth.onnx"]  # written atomically, nothing left over

    # the README's torch-free snippet, run in a process that never imports torch
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(photo)
    snippet = f"""
import sys
import numpy as np, onnxruntime
from PIL import Image

session = onnxruntime.InferenceSession({str(out)!r})
image = Image.open({str(photo)!r}).convert("RGB").resize((96, 64))  # the size the graph was exported for
x = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None] / 255
depth = session.run(None, {{"images": x, "class_ids": np.array([-1])}})[0][0, 0]  # metres, [64, 96]
assert "torch" not in sys.modules
np.save({str(tmp_path / "depth.npy")!r}, depth)
"""
    subprocess.run([sys.executable, "-c", snippet], check=True)
    image = np.asarray(Image.open(photo).convert("RGB").resize((96, 64)), dtype=np.float32) / 255
    with torch.inference_mode():
        expected = model(torch.from_numpy(image).permute(2, 0, 1)[None], torch.tensor([-1])).depth[0, 0].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "depth.npy"), expected, atol=1e-4)

    for extra, message in (
        (["--format", "tflite"], "--format 'tflite': expected one of onnx"),
        (["--dtype", "bf16"], "--dtype 'bf16': ONNX export stores one of fp32, fp16"),
        (["--height", "60"], "expected positive multiples of 8, got 60x96"),
    ):
        args = ["export", str(folder), str(tmp_path / "x.onnx"), "--height", "64", "--width", "96"]
        code = main([*args, *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err
    assert main(["export", str(folder), str(tmp_path / "x.txt"), "--height", "64", "--width", "96"]) == 2
    assert "expected a .onnx file name" in capsys.readouterr().err
