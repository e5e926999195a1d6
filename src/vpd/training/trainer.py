"""The one training loop (accelerate): the same code on one CPU, one GPU, or ``accelerate launch`` on many GPUs/nodes.

Iteration-based: the global batch (``train.batch_size``) is split over processes and gradient accumulation; the
sample stream is a deterministic function of the seed (``EpochSampler``), so a run killed at any moment and resumed
from its last checkpoint replays exactly what the uninterrupted run would have. Checkpoints are written to a
temporary folder and renamed into place, so a kill never leaves a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vpd.configuration import ConfigError, save_yaml, to_dict
from vpd.data.base import EpochSampler, PerceptionDataset
from vpd.data.registry import build_dataset
from vpd.errors import first_line, iterate
from vpd.tasks import get_task
from vpd.tasks.base import Task
from vpd.training import schedules
from vpd.training.config import RunConfig
from vpd.training.evaluate import EvalResult, eval_mode, evaluate, single_batch, to_device
from vpd.training.latent_cache import LatentCache
from vpd.training.latent_cache import attach as attach_latent_cache
from vpd.training.optim import build_adamw, param_groups, set_lr

CHECKPOINTS = "checkpoints"
STATE_NAME = "trainer_state.json"
# Sections that must not change when a run resumes: they define what is being trained and on what stream.
_RESUME_FIXED = ("model", "data", "optim")
def autocast_for(mixed_precision: str) -> str:
    """accelerate's ``mixed_precision`` for ``train.mixed_precision``: ``auto`` is bf16 autocast (fp32 master
    weights) where the hardware has bf16 units (CUDA, or a CPU with AMX / AVX512-BF16; see
    :func:`vpd.runtime.resolve_dtype`), else none; the choice is printed once."""
    if mixed_precision != "auto":
        return mixed_precision
    from vpd.runtime import announce_precision, resolve_dtype

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype, reason = resolve_dtype("auto", device)
    announce_precision(dtype, f"{reason}; bf16 autocast, fp32 weights" if dtype == torch.bfloat16 else reason, device)
    return "bf16" if dtype == torch.bfloat16 else "no"


_RESUME_FIXED_TRAIN = ("batch_size", "grad_accum", "seed", "epochs", "max_steps", "mixed_precision")


class Trainer:
    """Trains ``config.model`` on ``config.data`` for ``config.model.task``.

    Args:
        config: the run (see ``vpd.training.config``).
        task: overrides the task named by ``config.model.task``.
        model, train_set, val_set: prebuilt parts (tests, the demo); built from ``config`` when None.
        accelerator: a prebuilt ``accelerate.Accelerator``; by default one is made from ``config.train``.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        task: Task | None = None,
        model: torch.nn.Module | None = None,
        train_set: PerceptionDataset | None = None,
        val_set: PerceptionDataset | None = None,
        accelerator: Any = None,
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration, set_seed

        self.config = config
        train = config.train
        self.task = task or get_task(config.model.task)
        self.output_dir = Path(train.output_dir)
        self.accelerator = accelerator or Accelerator(
            mixed_precision=autocast_for(train.mixed_precision),
            gradient_accumulation_steps=train.grad_accum,
            log_with="tensorboard",
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir)),
        )
        world = self.accelerator.num_processes
        if train.batch_size % (world * train.grad_accum):
            raise ConfigError(
                f"train.batch_size {train.batch_size} is not divisible by processes ({world}) x "
                f"train.grad_accum ({train.grad_accum})"
            )
        self.per_device_batch = train.batch_size // (world * train.grad_accum)
        set_seed(train.seed)

        transform = self.task.train_transform(config)
        self.train_set = train_set or build_dataset(
            config.data.train.kind, config.data.train.args, transform=transform, seed=train.seed, where="data.train"
        )
        if val_set is None and config.data.val is not None:
            val_set = build_dataset(config.data.val.kind, config.data.val.args, seed=train.seed, where="data.val")
        self.val_set = val_set
        if train.eval_every and val_set is None:
            raise ConfigError(f"train.eval_every={train.eval_every} but the recipe has no data.val to evaluate on")
        if len(self.train_set) < train.batch_size:
            raise ConfigError(f"train.batch_size {train.batch_size} exceeds the {len(self.train_set)} training samples")

        if model is None:
            model = self.task.build_model(config, self.task.dataset_classes(self.train_set))
            if config.model.vae:
                from vpd.modeling.stable_diffusion import load_vae

                model.load_vae_weights(load_vae(config.model.vae), config.model.vae)
        if train.gradient_checkpointing:
            model.enable_gradient_checkpointing()  # type: ignore[operator]
        self.latent_caches: list[LatentCache] = []
        if train.latent_cache:
            if transform is not None and getattr(transform, "random", True):
                raise ConfigError(
                    f"train.latent_cache: the training augmentation {transform!r} changes the images every epoch, so "
                    "no cached latent would be read again; turn its random parts off or leave the cache off"
                )
            self.latent_caches = attach_latent_cache(model, train.latent_cache)
        groups = param_groups(model, config.optim.weight_decay, config.optim.param_rules, config.optim.no_decay)
        optimizer = build_adamw(groups, config.optim.lr, tuple(config.optim.betas))  # type: ignore[arg-type]
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)

        self.steps_per_epoch = max(1, len(self.train_set) // train.batch_size)
        self.total_steps = train.max_steps if train.max_steps is not None else train.epochs * self.steps_per_epoch
        self.step = 0
        self.best: float | None = None
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ schedule
    def lr_at(self, step: int, lr_scale: float = 1.0) -> float:
        """The learning rate of a group with multiplier ``lr_scale`` at the ``step``-th optimiser step (0-based)."""
        epochs = self.config.train.epochs
        per_epoch = self.steps_per_epoch if self.config.train.max_steps is None else max(1, self.total_steps // epochs)
        return schedules.group_lr(self.config.optim, step, self.total_steps, per_epoch, epochs, lr_scale)

    # ------------------------------------------------------------------ data
    def _train_loader(self) -> DataLoader:
        acc = self.accelerator
        consumed = self.step * self.config.train.batch_size
        sampler = EpochSampler(
            len(self.train_set),
            seed=self.config.train.seed,
            start=consumed,
            rank=acc.process_index,
            world_size=acc.num_processes,
        )
        workers = self.config.data.num_workers
        return DataLoader(
            self.train_set,
            batch_size=self.per_device_batch,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=acc.device.type == "cuda",
            drop_last=True,
        )

    # ------------------------------------------------------------------ loop
    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    def fit(self) -> dict[str, Any]:
        """Trains to ``total_steps`` (resuming if a checkpoint exists), evaluates, exports the model.

        Returns:
            ``{"steps", "seconds", "final_loss", "eval"}`` (eval: the final metrics, when there is a val set).
        """
        acc, train = self.accelerator, self.config.train
        resumed = self._resume() if train.resume else None
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(self.config, self.output_dir / "config.yaml")
            self._trim_log()
        acc.init_trackers("tensorboard", config=_flat_hparams(to_dict(self.config)))
        if resumed and self.is_main:
            print(f"resumed from {resumed} at step {self.step}/{self.total_steps}")

        start = time.perf_counter()
        data = iterate(self._train_loader())
        self.model.train()
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="training",
            disable=not (train.progress and self.is_main),
            dynamic_ncols=True,
        )
        running: list[torch.Tensor] = []
        last_loss = float("nan")
        while self.step < self.total_steps:
            lr = set_lr(self.optimizer, lambda scale: self.lr_at(self.step, scale))
            for _ in range(train.grad_accum):
                batch = to_device(next(data), acc.device)
                with acc.accumulate(self.model):
                    loss, _ = self.task.loss(self.model, batch, self.config)
                    acc.backward(loss)
                    if acc.sync_gradients and self.config.optim.grad_clip:
                        acc.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                running.append(loss.detach())
            self.step += 1
            bar.update(1)
            if self.step % train.log_every == 0 or self.step == self.total_steps:
                last_loss = float(acc.reduce(torch.stack(running).mean(), reduction="mean"))
                running.clear()
                self._log({"train/loss": last_loss, "train/lr": lr, "train/epoch": self.step / self.steps_per_epoch})
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
            if train.eval_every and self.step % train.eval_every == 0 and self.step != self.total_steps:
                self._evaluate_and_log()
            if train.checkpoint_every and self.step % train.checkpoint_every == 0 and self.step != self.total_steps:
                self.save_checkpoint()
        bar.close()
        seconds = time.perf_counter() - start
        result: dict[str, Any] = {"steps": self.step, "seconds": seconds, "final_loss": last_loss}
        if self.latent_caches:
            result["latent_cache"] = {"hits": sum(c.hits for c in self.latent_caches),
                                      "misses": sum(c.misses for c in self.latent_caches)}  # fmt: skip
            if self.is_main:
                print("\n".join(cache.summary() for cache in self.latent_caches), file=sys.stderr)
        if self.val_set is not None:
            result["eval"] = self._evaluate_and_log().metrics
        self.save_checkpoint()
        if self.is_main:
            acc.unwrap_model(self.model).save_pretrained(self.output_dir / "model")
        acc.end_training()
        return result

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, dataset: PerceptionDataset | None = None) -> EvalResult:
        """The task's protocol on ``dataset`` (default: the validation set), sharded over processes."""
        dataset = dataset or self.val_set
        if dataset is None:
            raise ValueError("no evaluation dataset (data.val is empty)")
        acc = self.accelerator
        return evaluate(
            self.task,
            acc.unwrap_model(self.model),
            dataset,
            self.config.eval,
            device=acc.device,
            rank=acc.process_index,
            world_size=acc.num_processes,
            progress=self.config.train.progress,
            autocast=acc.autocast,
        )

    def _evaluate_and_log(self) -> EvalResult:
        result = self.evaluate()
        self._log({f"eval/{k}": v for k, v in result.metrics.items()})
        name, higher_is_better = self.task.best_metric(self.config)
        value = result.metrics.get(name)
        better = value is not None and (
            self.best is None or (value > self.best if higher_is_better else value < self.best)
        )
        if better and self.is_main:
            self.best = value
            self.accelerator.unwrap_model(self.model).save_pretrained(self.output_dir / "model_best")
        if self.is_main and self.val_set is not None:
            self._save_visualization()
        return result

    def _save_visualization(self) -> None:
        from vpd.data.io import write_png_atomic

        assert self.val_set is not None
        batch = single_batch(self.val_set[0], self.accelerator.device)
        model = self.accelerator.unwrap_model(self.model)
        with eval_mode(model), torch.inference_mode(), self.accelerator.autocast():
            prediction = self.task.predict(model, batch, self.config.eval)
        panel = self.task.visualize(batch, prediction)
        write_png_atomic(self.output_dir / "visualizations" / f"step_{self.step:07d}.png", panel)
        tracker = self.accelerator.get_tracker("tensorboard", unwrap=True)
        tracker.add_image("eval/sample", panel, self.step, dataformats="HWC")

    # ------------------------------------------------------------------ logging
    def _log(self, values: dict[str, float]) -> None:
        self.accelerator.log(values, step=self.step)
        if self.is_main:
            record = {"step": self.step, **values}
            self.history.append(record)
            with open(self.output_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _trim_log(self) -> None:
        """On resume, drop log lines written after the checkpoint (they will be written again)."""
        path = self.output_dir / "metrics.jsonl"
        if not path.exists():
            return
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= self.step]
        path.write_text("".join(line + "\n" for line in kept))
        self.history = [json.loads(line) for line in kept]

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        folder = self.output_dir / CHECKPOINTS
        if not folder.is_dir():
            return []
        done = [p for p in folder.iterdir() if p.name.startswith("step_") and (p / STATE_NAME).is_file()]
        return sorted(done, key=lambda p: int(p.name.split("_")[1]))

    def save_checkpoint(self) -> Path:
        """Writes the full training state (model, optimiser, RNGs, step) atomically; keeps the newest few."""
        acc = self.accelerator
        folder = self.output_dir / CHECKPOINTS
        final = folder / f"step_{self.step:07d}"
        tmp = folder / f".tmp-step_{self.step:07d}"
        try:
            if self.is_main:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            acc.wait_for_everyone()
            acc.save_state(str(tmp), safe_serialization=True)
            acc.wait_for_everyone()
            if self.is_main:
                state = {"step": self.step, "best": self.best, "total_steps": self.total_steps}
                state["config"] = to_dict(self.config)
                (tmp / STATE_NAME).write_text(json.dumps(state, indent=2))
        except Exception as err:  # disk full, quota, permissions: torch and safetensors raise their own types
            shutil.rmtree(tmp, ignore_errors=True)
            previous = self.checkpoints()
            kept = f"the latest complete checkpoint, {previous[-1]}, is intact" if previous else "no checkpoint yet"
            reason = first_line(err)
            raise OSError(f"writing checkpoint {final} failed ({reason}); {kept}") from None
        if self.is_main:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in self.checkpoints()[: -self.config.train.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def _resume(self) -> Path | None:
        checkpoints = self.checkpoints()
        if not checkpoints:
            return None
        latest = checkpoints[-1]
        state = json.loads((latest / STATE_NAME).read_text())
        _check_resumable(state["config"], to_dict(self.config), latest)
        self.accelerator.load_state(str(latest))
        self.step = int(state["step"])
        self.best = state.get("best")
        return latest


def _check_resumable(saved: dict[str, Any], current: dict[str, Any], where: Path) -> None:
    def fixed(config: dict[str, Any], section: str) -> Any:
        if section == "data":  # workers only change where samples are loaded, not which: free to change
            return {k: v for k, v in config["data"].items() if k != "num_workers"}
        return config.get(section)

    changed = [s for s in _RESUME_FIXED if fixed(saved, s) != fixed(current, s)]
    changed += [f"train.{k}" for k in _RESUME_FIXED_TRAIN if saved["train"].get(k) != current["train"].get(k)]
    if changed:
        raise ConfigError(
            f"{where} was written with a different {', '.join(changed)}; resuming would not reproduce the run. "
            "Use a new train.output_dir, or train.resume=false to start over."
        )


def _flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flat scalar hyper-parameters for TensorBoard (lists and None as strings)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_hparams(value, f"{name}/"))
        elif isinstance(value, (int, float, str, bool)):
            out[name] = value
        else:
            out[name] = str(value)
    return out
