"""``vpd serve``: the page's predictions equal ``vpd predict``'s files, bad input is refused in one line, and a real
headless Chromium (Debian's chromium + chromium-driver, driven by selenium) uploads a photo, predicts, sees the result
and downloads the 16-bit PNG; the test writes a screenshot of the page."""

from __future__ import annotations

import dataclasses
import io
import shutil
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vpd.cli import main

pytest.importorskip("gradio")

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _lively(model: nn.Module) -> nn.Module:
    """PyTorch's default init for the heads' convolutions (VPD's N(0, 0.001) gives near-constant maps)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.weight.std() < 0.01:
            module.reset_parameters()
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Tiny depth, semantic and referring models (the referring one with its tiny CLIP bundled)."""
    from vpd.data.classes import ADE20K_CLASSES
    from vpd.modeling.depth import VPDDepth, tiny_vpd_depth_config
    from vpd.modeling.referring import build_vpd_referring, tiny_vpd_referring_config
    from vpd.modeling.semantic import VPDSemantic, tiny_vpd_semantic_config
    from vpd.modeling.text_encoder import tiny_clip

    root = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    depth = _lively(VPDDepth(tiny_vpd_depth_config())).save_pretrained(root / "depth")
    semantic = _lively(VPDSemantic(tiny_vpd_semantic_config(tuple(ADE20K_CLASSES[:5])))).save_pretrained(root / "seg")
    encoder, tokenizer = tiny_clip(["the", "chair", "on", "left"])
    encoder.save_pretrained(root / "clip")
    tokenizer.save_pretrained(root / "clip")
    config = tiny_vpd_referring_config(context_length=8, text_encoder=str(root / "clip"))
    referring = _lively(build_vpd_referring(dataclasses.replace(config, bundle_text_encoder=True)))
    return Path(depth), Path(semantic), Path(referring.save_pretrained(root / "refer"))


def _photo(path: Path) -> np.ndarray:
    image = np.random.default_rng(0).integers(0, 256, (48, 72, 3), dtype=np.uint8)
    Image.fromarray(image).save(path)
    return image


def test_server_writes_what_vpd_predict_writes(models: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from vpd.inference.app import Server, demo_models

    image = _photo(tmp_path / "photo.png")
    server = Server([str(m) for m in models], dtype="fp32", workdir=tmp_path / "served")
    assert server.labels == [f"{models[0]} (depth)", f"{models[1]} (semantic)", f"{models[2]} (referring)"]
    sentence = "the chair on the left"
    for source, label, suffix in zip(models, server.labels, ("_depth.png", "_labels.png", "_0_mask.png"), strict=True):
        served = server.predict(label, image, sentence)
        assert served.download.name == "photo" + suffix and served.preview.is_file()
        assert "48x72 photo in" in served.summary
        cli = ["predict", str(tmp_path / "photo.png"), "--model", str(source), "--output", str(tmp_path / "cli"),
               "--dtype", "fp32", *(["--expression", sentence] if "referring" in label else [])]  # fmt: skip
        assert main(cli) == 0
        np.testing.assert_array_equal(np.asarray(Image.open(served.download)),
                                      np.asarray(Image.open(tmp_path / "cli" / served.download.name)))  # fmt: skip
    assert np.asarray(Image.open(server.predict(server.labels[0], image).download)).dtype == np.uint16
    with pytest.raises(ValueError, match="a referring model needs a sentence"):
        server.predict(server.labels[2], image, "  ")

    with pytest.raises(ValueError, match="upload a photo first"):
        server.predict(server.labels[0], None)
    with pytest.raises(ValueError, match="expected an RGB photo, got an array of shape"):
        server.predict(server.labels[0], np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        server.predict("nope", image)
    with pytest.raises(ValueError, match="no model to serve"):
        Server([])
    # without --model: the models earlier demo runs left (depth's runs/demo/model, one-step's runs/demo_onestep/*/model)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    shutil.copytree(models[0], tmp_path / "runs" / "demo" / "model")
    shutil.copytree(models[0], tmp_path / "runs" / "demo_onestep" / "depth" / "model")
    (tmp_path / "runs" / "demo_semantic").mkdir()  # a demo that never finished: no model
    assert demo_models(tmp_path / "runs") == [tmp_path / "runs" / "demo" / "model",
                                              tmp_path / "runs" / "demo_onestep" / "depth" / "model"]  # fmt: skip


def test_serve_refuses_bad_options_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--model", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "missing") in err and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
def test_browser_uploads_a_photo_and_gets_the_depth(models: tuple[Path, Path, Path], tmp_path: Path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from vpd.inference.app import Server, launch

    image = _photo(tmp_path / "photo.png")
    server = Server([str(m) for m in models], dtype="fp32", workdir=tmp_path / "served")
    port = _free_port()
    page = launch(server, port=port, block=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 120)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#vpd-photo input[type=file]"))
        upload.send_keys(str(tmp_path / "photo.png"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#vpd-photo img"))
        driver.find_element(By.CSS_SELECTOR, "#vpd-predict").click()
        result = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#vpd-result img"))[0]
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", result))
        shown = driver.execute_script("return [arguments[0].naturalHeight, arguments[0].naturalWidth]", result)
        assert shown == [48, 72]  # the colour map at the photo's size
        assert "48x72 photo in" in driver.find_element(By.CSS_SELECTOR, "#vpd-summary").text
        link = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#vpd-download a[href]"))[0]
        with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
            downloaded = np.asarray(Image.open(io.BytesIO(response.read())))
        expected = server.predict(server.labels[0], image).download
        assert downloaded.dtype == np.uint16 and downloaded.shape == (48, 72)
        np.testing.assert_array_equal(downloaded, np.asarray(Image.open(expected)))
        driver.save_screenshot(str(tmp_path / "vpd-serve.png"))
        print(f"screenshot: {tmp_path / 'vpd-serve.png'}")
        assert Image.open(tmp_path / "vpd-serve.png").size[0] > 0
    finally:
        driver.quit()
        page.close()
