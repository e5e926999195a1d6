"""ReferringPredictor and ``vpd predict`` with a referring model: sizes, the mask rule, batching of sentences, the
files per (image, sentence), ``--expression`` / ``--expressions``, and the error policy (one line, exit 2, no output).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from hostile import Case, check, run_cli
from vpd.inference.referring import PROB_PNG_SCALE, ReferringPrediction, ReferringPredictor
from vpd.modeling.depth import build_vpd_depth, tiny_vpd_depth_config
from vpd.modeling.referring import build_vpd_referring, tiny_vpd_referring_config
from vpd.modeling.text_encoder import tiny_clip

SENTENCES = ["the man on the left", "dog right"]
RESOLUTION = 64  # the tiny model's input side (the official 512 is slow on a CPU)


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A tiny referring model with its tiny CLIP bundled, a head at unit gain and its object bias calibrated so that
    about half the pixels are the object (the default init gives probabilities within 0.5 +- 0.04), and a depth
    model."""
    root = tmp_path_factory.mktemp("referring_predict")
    encoder, tokenizer = tiny_clip(sorted({w for s in SENTENCES for w in s.split()}))
    encoder.save_pretrained(root / "clip")
    tokenizer.save_pretrained(root / "clip")
    config = tiny_vpd_referring_config(context_length=8, text_encoder=str(root / "clip"))
    model = build_vpd_referring(dataclasses.replace(config, bundle_text_encoder=True)).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.head.parameters():
            if parameter.dim() > 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / parameter[0].numel() ** 0.5)
        logits = model(torch.rand(1, 3, 64, 64, generator=generator), expressions=SENTENCES[:1]).logits
        model.head.classifier.bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    model_dir = model.save_pretrained(root / "model")
    depth_dir = build_vpd_depth(tiny_vpd_depth_config()).save_pretrained(root / "depth")
    return SimpleNamespace(model_dir=model_dir, depth_dir=depth_dir)


@pytest.fixture(scope="module")
def predictor(assets: SimpleNamespace) -> ReferringPredictor:
    return ReferringPredictor.from_pretrained(assets.model_dir, dtype="fp32")


def _check(prediction: ReferringPrediction, size: tuple[int, int], sentence: str) -> None:
    assert isinstance(prediction, ReferringPrediction) and prediction.expression == sentence
    assert prediction.image_size == size
    assert isinstance(prediction.mask, np.ndarray) and isinstance(prediction.probability, np.ndarray)
    assert prediction.mask.shape == size and prediction.mask.dtype == bool
    assert prediction.probability.shape == size and prediction.probability.dtype == np.float32
    assert prediction.probability.min() >= 0.0 and prediction.probability.max() <= 1.0
    np.testing.assert_array_equal(prediction.mask, prediction.probability >= 0.5)


def test_sizes_mask_rule_and_batching(predictor: ReferringPredictor) -> None:
    array, pil = _image(48, 64), Image.fromarray(_image(40, 56, seed=1))
    for image, size in ((array, (48, 64)), (pil, (40, 56))):
        both = predictor(image, SENTENCES, processing_resolution=RESOLUTION)
        assert isinstance(both, list) and len(both) == 2
        for prediction, sentence in zip(both, SENTENCES):
            _check(prediction, size, sentence)
            assert 0.05 < prediction.mask.mean() < 0.95  # both classes present: the rule is really exercised
            alone = predictor(image, sentence, processing_resolution=RESOLUTION)  # one sentence, one pass
            _check(alone, size, sentence)
            np.testing.assert_allclose(prediction.probability, alone.probability, rtol=0, atol=1e-5)
        assert not np.array_equal(both[0].probability, both[1].probability)  # the sentence matters
        one_by_one = predictor(image, SENTENCES, processing_resolution=RESOLUTION, batch_size=1)
        for a, b in zip(both, one_by_one):
            np.testing.assert_allclose(a.probability, b.probability, rtol=0, atol=1e-5)

    # A list of images: one list of sentences each, or one sentence for all; the same numbers as one by one.
    nested = predictor([array, pil], [SENTENCES, SENTENCES[1:]], processing_resolution=RESOLUTION)
    assert [len(n) for n in nested] == [2, 1]
    single = predictor(pil, SENTENCES[1], processing_resolution=RESOLUTION)
    np.testing.assert_allclose(nested[1][0].probability, single.probability, rtol=0, atol=1e-5)
    shared = predictor([array, pil], SENTENCES[1], processing_resolution=RESOLUTION)
    assert [p.image_size for p in shared] == [(48, 64), (40, 56)]
    np.testing.assert_allclose(shared[1].probability, single.probability, rtol=0, atol=1e-5)
    as_torch = predictor(array, SENTENCES[0], processing_resolution=RESOLUTION, output_type="pt")
    assert isinstance(as_torch.mask, torch.Tensor) and as_torch.mask.dtype == torch.bool


def test_agrees_with_the_model_and_the_task(predictor: ReferringPredictor) -> None:
    """At the model's own size (no resizing) the probability is the softmax of the model's logits and the mask is the
    task's ``argmax == 1``."""
    image = _image(RESOLUTION, RESOLUTION, seed=2)
    predictions = predictor(image, SENTENCES, processing_resolution=RESOLUTION)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).expand(2, -1, -1, -1)
    with torch.no_grad():
        logits = predictor.model(tensor, expressions=SENTENCES).logits
    for k, prediction in enumerate(predictions):
        np.testing.assert_allclose(prediction.probability, logits.softmax(1)[k, 1].numpy(), rtol=0, atol=1e-5)
        np.testing.assert_array_equal(prediction.mask, (logits[k].argmax(0) == 1).numpy())


@pytest.mark.parametrize(
    ("images", "expressions", "message"),
    [
        ("one", "", r"^expressions: expected a non-empty sentence, got ''$"),
        ("one", ["ok", "  "], r"^expressions\[1\]: expected a non-empty sentence"),
        ("one", ["ok", 3], r"^expressions\[1\]: expected a sentence \(str\), got int$"),
        ("one", [], r"^expressions: got an empty list"),
        ("one", None, r"^expressions: expected a sentence, a list of sentences or one list per image, got NoneType"),
        ("one", [["a"]], r"one image takes a sentence or a list of sentences, got a list of lists"),
        ("two", [["a"]], r"^expressions: got 1 lists of sentences for 2 images; expected one per image$"),
        ("two", ["a", "b"], r"for a list of 2 images pass one list of sentences per image"),
        ("two", [["a"], []], r"^expressions\[1\]: got an empty list"),
    ],
)
def test_api_errors(predictor: ReferringPredictor, images: str, expressions: object, message: str) -> None:
    inputs = _image(8, 8) if images == "one" else [_image(8, 8), _image(8, 8)]
    with pytest.raises(ValueError, match=message) as raised:
        predictor(inputs, expressions, processing_resolution=RESOLUTION)  # type: ignore[arg-type]
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------------------------------------- the CLI


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _outputs(stem: str, count: int) -> list[str]:
    names = [f"{stem}_{k}_{kind}.png" for k in range(count) for kind in ("mask", "overlay", "prob")]
    return [*names, f"{stem}_expressions.json"]


def test_cli_expression_twice(
    assets: SimpleNamespace, predictor: ReferringPredictor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _image(48, 64)
    Image.fromarray(image).save(tmp_path / "a.png")
    out = tmp_path / "out"
    argv = ["predict", str(tmp_path / "a.png"), "--model", str(assets.model_dir), "-o", str(out),
            "--processing-resolution", str(RESOLUTION), "--batch-size", "2", "--dtype", "fp32"]  # fmt: skip
    code, stdout, err = run_cli([*argv, "--expression", SENTENCES[0], "--expression", SENTENCES[1]], capsys)
    assert code == 0, err
    assert "1 image" in stdout
    assert _files(out) == sorted(_outputs("a", 2))
    index = json.loads((out / "a_expressions.json").read_text())
    assert [(e["k"], e["expression"], e["mask"]) for e in index["expressions"]] == [
        (0, SENTENCES[0], "a_0_mask.png"),
        (1, SENTENCES[1], "a_1_mask.png"),
    ]
    for k, expected in enumerate(predictor(image, SENTENCES, processing_resolution=RESOLUTION)):
        mask = np.asarray(Image.open(out / f"a_{k}_mask.png"))
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, expected.mask)
        with Image.open(out / f"a_{k}_prob.png") as png:
            assert png.mode.startswith("I;16")
            stored = np.asarray(png)
        np.testing.assert_allclose(stored / PROB_PNG_SCALE, expected.probability, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(stored >= 32768, expected.mask)  # the documented threshold on the PNG
        overlay = np.asarray(Image.open(out / f"a_{k}_overlay.png").convert("RGB"))
        band = overlay.shape[0] - 48
        assert overlay.shape[1] == 64 and band > 8  # the sentence's band above the picture
        assert overlay[:band].max() > 200 and np.median(overlay[:band]) < 64  # white text on a dark band
        tinted = overlay[band:][expected.mask]
        assert tinted.size and np.all(tinted[:, 0] >= image[expected.mask][:, 0] // 2)


def test_cli_expressions_file(
    assets: SimpleNamespace, predictor: ReferringPredictor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    Image.fromarray(_image(48, 64, 3)).save(data / "x.png")
    Image.fromarray(_image(40, 56, 4)).save(data / "sub" / "y.jpg")
    lines = [
        {"image": "x.png", "expression": SENTENCES[0]},
        {"image": "sub/y.jpg", "expression": SENTENCES[1]},
        {"image": "x.png", "expression": SENTENCES[1]},
    ]
    jsonl = data / "refs.jsonl"
    jsonl.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    out = tmp_path / "out"
    argv = ["predict", "--expressions", str(jsonl), "--model", str(assets.model_dir), "-o", str(out),
            "--processing-resolution", str(RESOLUTION), "--formats", "mask", "--dtype", "fp32"]  # fmt: skip
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "2 images" in stdout
    assert _files(out) == sorted(["x_0_mask.png", "x_1_mask.png", "x_expressions.json", "sub/y_0_mask.png",
                                  "sub/y_expressions.json"])  # fmt: skip
    assert [e["expression"] for e in json.loads((out / "x_expressions.json").read_text())["expressions"]] == SENTENCES
    expected = predictor(np.asarray(Image.open(data / "sub" / "y.jpg")), SENTENCES[1], processing_resolution=RESOLUTION)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "sub" / "y_0_mask.png")) == 255, expected.mask)

    # With --expression as well: that sentence for every image, before the file's.
    out2 = tmp_path / "out2"
    argv[argv.index(str(out))] = str(out2)
    code, _, err = run_cli([*argv, "--expression", "the man"], capsys)
    assert code == 0, err
    index = json.loads((out2 / "sub" / "y_expressions.json").read_text())["expressions"]
    assert [e["expression"] for e in index] == ["the man", SENTENCES[1]]


# ----------------------------------------------------------------------------------------- the error policy (CLI)


@pytest.fixture
def world(assets: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(_image(24, 32)).save(inputs / "good.png")
    return SimpleNamespace(**vars(assets), root=tmp_path, inputs=inputs, out=tmp_path / "out")


def refer(world: SimpleNamespace, *extra: str, model: str | None = None) -> list[str]:
    return ["predict", str(world.inputs), "--model", model or str(world.model_dir), "-o", str(world.out),
            "--processing-resolution", str(RESOLUTION), *extra]  # fmt: skip


def jsonl(text: str, *extra: str):
    def build(world: SimpleNamespace) -> list[str]:
        path = world.inputs / "refs.jsonl"
        path.write_text(text)
        return [*refer(world, *extra)[:1], *refer(world, *extra)[2:], "--expressions", str(path)]

    return build


GOOD_LINE = json.dumps({"image": "good.png", "expression": "the man"}) + "\n"

CASES = [
    Case("referring-ok", lambda w: refer(w, "--expression", "the man"), 0, outputs=tuple(_outputs("good", 1))),
    Case("referring-no-expression", refer, 2,
         r"is a referring model: give the sentences with --expression TEXT \(every image\) or --expressions"),
    Case("referring-empty-expression", lambda w: refer(w, "--expression", ""), 2,
         r"argument --expression: expected a non-empty sentence, got ''"),
    Case("referring-blank-expression", lambda w: refer(w, "--expression", "ok", "--expression", "  "), 2,
         r"argument --expression: expected a non-empty sentence, got '  '"),
    Case("referring-jsonl-not-json", jsonl(GOOD_LINE + "\n{oops\n"), 2, r"refs\.jsonl:3: not valid JSON"),
    Case("referring-jsonl-no-expression", jsonl(GOOD_LINE + json.dumps({"image": "good.png"}) + "\n"), 2,
         r"refs\.jsonl:2: \"expression\": expected a non-empty sentence, got None"),
    Case("referring-jsonl-list", jsonl("[1, 2]\n"), 2,
         r"refs\.jsonl:1: expected an object with keys image and expression, got list"),
    Case("referring-jsonl-missing-image", jsonl(json.dumps({"image": "nope.png", "expression": "a"}) + "\n"), 2,
         r"refs\.jsonl:1: .*nope\.png: no such image file"),
    Case("referring-jsonl-empty", jsonl("\n"), 2, r"refs\.jsonl: no lines with an image and an expression"),
    Case("referring-jsonl-missing-file", lambda w: [*refer(w), "--expressions", str(w.root / "no.jsonl")], 2,
         r"--expressions .*no\.jsonl: no such file"),
    Case("referring-image-without-sentence",
         lambda w: (Image.fromarray(_image(8, 8)).save(w.root / "other.png"),
                    [*jsonl(GOOD_LINE)(w), str(w.root / "other.png")])[1], 2,
         r"other\.png: no sentence for this image"),
    Case("referring-flip", lambda w: refer(w, "--expression", "a", "--flip"), 2,
         r"--flip does not apply to referring models"),
    Case("referring-depth-option", lambda w: refer(w, "--expression", "a", "--scene", "bedroom"), 2,
         r"--scene applies to depth models; .* is a referring model"),
    Case("referring-bad-format", lambda w: refer(w, "--expression", "a", "--formats", "png16"), 2,
         r"--formats: png16 is not a referring output; expected a subset of mask,overlay,prob"),
    Case("depth-expression", lambda w: refer(w, "--expression", "a", model=str(w.depth_dir)), 2,
         r"--expression applies to referring models; .* is a depth model"),
    Case("depth-expressions-file", lambda w: jsonl(GOOD_LINE, "--model", str(w.depth_dir))(w), 2,
         r"--expressions applies to referring models; .* is a depth model"),
    Case("depth-no-input", lambda w: ["predict", "--model", str(w.depth_dir), "-o", str(w.out)], 2,
         r"no INPUT given"),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_cli_error_policy(case: Case, world: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    check(case, world, capsys)
    if case.code == 2:
        assert not world.out.exists()
