"""kill -9 of a real `vpd train` process, at several moments, then the same command again: the exported model must
be bit-identical to an uninterrupted run's. Evaluation runs during training, so this also proves that evaluation and
visualisation leave the model's weights and buffers (BatchNorm statistics) alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from runs import TINY_RUN, as_cli

STEPS = 6
RUN = [*TINY_RUN, f"train.max_steps={STEPS}", "train.eval_every=2", "train.checkpoint_every=1", "train.log_every=1"]


def command(output: Path) -> list[str]:
    overrides = as_cli([*RUN, f"train.output_dir={output}"])
    return [sys.executable, "-m", "vpd.cli", "train", "--config", "demo_synthetic_depth", *overrides]


def run_to_end(output: Path) -> None:
    done = subprocess.run(command(output), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def kill_when(output: Path, moment: Callable[[Path], bool]) -> None:
    """Starts the run and SIGKILLs it as soon as ``moment(output)`` holds (polled every millisecond)."""
    process = subprocess.Popen(command(output), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not moment(output):
            assert process.poll() is None, "the run ended before the moment to kill it came"
            assert time.monotonic() < deadline, "the moment to kill never came"
            time.sleep(0.001)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()


def checkpoint(step: int) -> Callable[[Path], bool]:
    return lambda output: (output / "checkpoints" / f"step_{step:07d}" / "trainer_state.json").is_file()


def writing_checkpoint(output: Path) -> bool:
    folder = output / "checkpoints"
    return folder.is_dir() and any(p.name.startswith(".tmp-step_") for p in folder.iterdir())


MOMENTS = {
    "after-step-2-checkpoint": checkpoint(2),  # mid-run, right after an evaluation + checkpoint
    "during-a-checkpoint-write": writing_checkpoint,
    "right-after-the-final-checkpoint": checkpoint(STEPS),  # before (or while) the model is exported
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    output = tmp_path_factory.mktemp("straight")
    run_to_end(output)
    return load_file(output / "model" / "model.safetensors")


@pytest.mark.parametrize("moment", list(MOMENTS), ids=list(MOMENTS))
def test_kill_9_then_rerun_exports_the_same_model(
    moment: str, uninterrupted: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    kill_when(tmp_path, MOMENTS[moment])
    run_to_end(tmp_path)
    resumed = load_file(tmp_path / "model" / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    different = [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])]
    assert not different, f"resumed export differs in {different[:5]}"
    assert any("running_mean" in k for k in resumed)  # the buffers evaluation must not touch are compared too


def test_evaluation_leaves_weights_and_buffers_bit_identical(tmp_path: Path) -> None:
    from runs import tiny_run_config
    from vpd.training.trainer import Trainer

    trainer = Trainer(tiny_run_config(tmp_path, "train.max_steps=2"))
    trainer.fit()  # trained a little: BatchNorm statistics are not at their initial values
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.train()
    model.backbone.vae.eval()  # a part deliberately in eval mode during training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    trainer._evaluate_and_log()  # evaluation + the visualisation forward
    after = model.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    assert {name: m.training for name, m in model.named_modules()} == modes  # each module's own mode restored
