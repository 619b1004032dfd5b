"""One training loop for every model and modality.

AdamW, gradient clipping, linear warm-up then cosine decay, an optional moving average of the
weights, periodic validation, a progress bar, ``metrics.jsonl``, and atomic checkpoints from which ``--resume`` continues exactly: the batch of
each step is a function of (seed, step), and the model, optimizer, step and RNG states are restored.

A model plugs in through ``model.loss(batch, step) -> {"loss": ..., other stats}``; a ``validate(model)``
callable returns the held-out metrics, whose ``"loss"`` picks the best and stops on divergence.
"""

import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from genseq import distributed
from genseq.errors import GenseqError
from genseq.store import BEST_FILE, CHECKPOINT_FILE, MODEL_FILE, model_record, read_file, save_atomic


@dataclass
class TrainConfig:
    steps: int | None = None      # optimizer steps in all; or
    minutes: float | None = None  # a time budget: steps are then fixed after a short calibration
    batch_size: int | None = 32  # None: the task's, or what genseq.sizing chooses
    seq_len: int | None = None  # tokens per window; None: 128 of text, 2,048 samples of audio
    lr: float | None = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    valid_every: int = 250
    log_every: int = 10
    seed: int = 0
    keep_checkpoints: int = 0  # also keep this many past checkpoints in RUN/checkpoints/
    precision: str | None = "float32"  # or bf16 / fp16: autocast for the forward pass, fp32 weights;
    # None: as genseq.sizing chooses for the run, else float32
    compile: bool = False  # torch.compile the model's forward
    ema: float = 0.0  # > 0: validate and write model.pt / best.pt with an exponential moving average
    checkpoint_minutes: float = 2.0  # also write a checkpoint when this long has passed since the last
    carry: int = 0  # > 0: lanes of this many consecutive windows that carry the model's state (TBPTT)


def learning_rate(config: TrainConfig, step: int, total: int | None) -> float:
    """Linear warm-up over ``warmup_steps`` (at most a fifth of the run), then cosine decay to a
    tenth of ``lr`` at ``total``. Before ``total`` is known (time budgets) only the warm-up applies."""
    warmup = config.warmup_steps if total is None else min(config.warmup_steps, max(1, total // 5))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if total is None:
        return config.lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def trained_parameters(model: torch.nn.Module) -> dict:
    """The parameters the training loop trains, by name: all but a VAE's proposal, which is
    fitted after it (:func:`genseq.vae.fit_proposal`)."""
    return {name: p for name, p in model.named_parameters() if not name.startswith("proposal.")}


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's groups: weight decay on the matrices of linear and recurrent layers, none on
    biases, norms and embeddings (as nanoGPT's ``configure_optimizers``), so that rare tokens'
    embeddings are not pulled to zero between their updates."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    decay, plain = [], []
    for p in trained_parameters(model).values():
        (decay if p.dim() >= 2 and id(p) not in embeddings else plain).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


PRECISIONS = {"float32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def mixed_precision(precision: str | None, device: torch.device):
    """The autocast context and gradient scaler for ``precision`` (None: float32). bf16 runs on
    CPUs and recent GPUs; fp16 needs CUDA and scales the loss so that small gradients survive."""
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise GenseqError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if precision == "fp16" and device.type != "cuda":
        raise GenseqError("--precision fp16 needs a CUDA GPU; use bf16 on this device")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise GenseqError("this GPU has no bf16; use --precision fp16")
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return autocast, scaler


@contextmanager
def terminate_as_interrupt():
    """Treat SIGTERM (a job scheduler, ``kill``, ``timeout``) like Ctrl-C while training, so that
    both save a checkpoint; the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Trainer:
    """Trains ``model`` on ``data.batch(step)`` and writes the run folder.

    ``meta`` goes into every model file beside weights and codec (corpus facts); the latest held-out
    metrics are added as ``meta["valid"]``. ``before_step(step)``, if given, runs before each
    step's loss (a task's schedule of changes to the model). ``feedback(model, step)``, if given,
    runs after each validation with the weights validated, and returns lines to show the user
    (samples a task drew and wrote to ``RUN/samples/``); they are printed unless ``progress`` is off.
    """

    calibration_steps = 20

    def __init__(self, model, codec, task: str, data, validate, config: TrainConfig, run_dir,
                 device: torch.device, meta: dict | None = None, progress: bool = True, before_step=None,
                 feedback=None):
        self.model, self.codec, self.task, self.data = model.to(device), codec, task, data
        self.validate, self.config, self.device = validate, config, device
        self.run_dir, self.meta, self.progress = Path(run_dir), meta or {}, progress
        self.optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
        self.step = 0
        self.total = config.steps
        self.valid = None
        self.best = None  # the lowest validation loss so far; best.pt holds those weights
        self.rank, self.world = distributed.world()
        self.main = self.rank == 0  # the one process that validates, logs and writes files
        if config.compile:  # what the loop calls: the loss, whose forward passes it holds
            self.model.loss = torch.compile(self.model.loss)
        self.compute_loss = distributed.wrap(self.model, device)
        self.before_step, self.feedback = before_step, feedback
        self.best_step = None  # the step whose weights best.pt holds
        self.curve: list[tuple[float, float | None]] = []  # (held-out loss, mean training loss) per validation
        self.train_losses: list[float] = []  # training losses logged since the last validation
        self.warned_overfitting = False
        self.autocast, self.scaler = mixed_precision(config.precision, device)
        self.params = trained_parameters(self.model)
        self.ema = {name: p.detach().clone() for name, p in self.params.items()} if config.ema else None
        self.carried = None  # with --carry: the state the lanes' next windows continue from

    # -- the moving average of the weights (Polyak averaging) ----------------------------------
    def _update_ema(self) -> None:
        """ema <- ema + (1 - d) (weights - ema), with d = min(--ema, (1 + step) / (10 + step)) so
        that the average forgets the random initialisation early on."""
        decay = min(self.config.ema, (1 + self.step) / (10 + self.step))
        for name, average in self.ema.items():
            average.lerp_(self.params[name].detach(), 1 - decay)

    def adopt_average(self) -> None:
        """Make the averaged weights the model's own (no-op without --ema): a stage that goes on
        from the trained model (the VAE's encoder refit) starts from what the run ships."""
        if self.ema is None:
            return
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(self.ema[name])

    def restart_average(self) -> None:
        """Start the moving average afresh from the current weights (no-op without --ema)."""
        if self.ema is not None:
            self.ema = {name: p.detach().clone() for name, p in self.params.items()}

    @contextmanager
    def averaged(self):
        """The model holds the averaged weights inside this block (no-op without --ema)."""
        if self.ema is None:
            yield
            return
        trained = {name: p.detach().clone() for name, p in self.params.items()}
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(self.ema[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(trained[name])

    # -- state ---------------------------------------------------------------------------------
    def _model_file(self, averaged: bool = True) -> dict:
        """The model file's contents; under --ema, with the averaged weights unless told not to."""
        record = model_record(self.model, self.codec, self.task, **self.meta, valid=self.valid, step=self.step)
        if averaged and self.ema is not None:
            record["model"] = {**record["model"], **self.ema}
        return record

    def save(self) -> None:
        """Write ``checkpoint.pt``, ``model.pt`` and, when validation improved, ``best.pt``, each
        atomically. ``best.pt`` is what to ship from a run that went on to overfit."""
        if not self.main:
            return
        model_file = self._model_file()
        improved = self.valid is not None and (self.best is None or self.valid["loss"] < self.best)
        if improved:
            self.best, self.best_step = self.valid["loss"], self.step
        trained = self._model_file(averaged=False) if self.ema is not None else model_file
        checkpoint = {**trained, "optimizer": self.optimizer.state_dict(), "total_steps": self.total,
                      "train": asdict(self.config), "rng_cpu": torch.get_rng_state(), "best": self.best,
                      "best_step": self.best_step,
                      "ema": self.ema,
                      "carried": None if self.carried is None else self.model.carried_fields(self.carried)}
        if self.device.type == "cuda":
            checkpoint["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        save_atomic(checkpoint, self.run_dir / CHECKPOINT_FILE)
        if self.config.keep_checkpoints:
            self._keep_checkpoint()
        save_atomic(model_file, self.run_dir / MODEL_FILE)
        if improved:
            save_atomic(model_file, self.run_dir / BEST_FILE)

    def _keep_checkpoint(self) -> None:
        """Link the checkpoint just written into ``checkpoints/step-N.pt`` (a hard link: the next
        save renames a new file over checkpoint.pt, the link keeps this one) and drop the oldest
        beyond ``keep_checkpoints``."""
        folder = self.run_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        kept = folder / f"step-{self.step:08d}.pt"
        kept.unlink(missing_ok=True)
        try:
            os.link(self.run_dir / CHECKPOINT_FILE, kept)
        except OSError:  # a file system without hard links
            shutil.copyfile(self.run_dir / CHECKPOINT_FILE, kept)
        for old in sorted(folder.glob("step-*.pt"))[:-self.config.keep_checkpoints]:
            old.unlink()

    def resume(self) -> None:
        """Restore everything from ``checkpoint.pt`` and drop metrics logged after it."""
        checkpoint = read_file(self.run_dir / CHECKPOINT_FILE)
        self.model.load_state_dict(checkpoint["model"])
        if len(checkpoint["optimizer"]["param_groups"]) != len(self.optimizer.param_groups):
            raise GenseqError(f"{self.run_dir / CHECKPOINT_FILE} was written by an older genseq whose optimizer "
                              "this one cannot continue; resume it with that genseq, or start a new run")
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.step, self.total, self.valid = checkpoint["step"], checkpoint["total_steps"], checkpoint["valid"]
        self.best, self.best_step = checkpoint.get("best"), checkpoint.get("best_step")
        if self.ema is not None:
            self.ema = {name: t.to(self.device) for name, t in checkpoint["ema"].items()}
        if checkpoint.get("carried") is not None:
            self.carried = self.model.carried_state(checkpoint["carried"], self.device)
        torch.set_rng_state(checkpoint["rng_cpu"])
        if "rng_cuda" in checkpoint and self.device.type == "cuda":
            torch.cuda.set_rng_state(checkpoint["rng_cuda"], self.device)
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.exists():
            kept = [line for line in metrics.read_text().splitlines()
                    if line and json.loads(line)["step"] <= self.step]
            metrics.write_text("".join(line + "\n" for line in kept))

    def log(self, **entry) -> None:
        """Append one entry, stamped with the step, to ``metrics.jsonl`` (rank 0)."""
        if not self.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, **entry}) + "\n")

    # -- loop ----------------------------------------------------------------------------------
    def validate_now(self) -> dict | None:
        """Score the held-out items (the averaged weights under --ema), log them and keep them for
        the next model file; None on the ranks that do not validate."""
        if not self.main:
            return None
        self.model.eval()
        start = time.perf_counter()
        with self.averaged():
            metrics = self.validate(self.model)
            seconds = time.perf_counter() - start
            shown = self.feedback(self.model, self.step) if self.feedback is not None else []
        self.model.train()
        if not math.isfinite(metrics["loss"]):
            raise GenseqError(f"validation loss became {metrics['loss']} at step {self.step}; the last "
                              "good checkpoint is kept, resume with a lower --lr")
        self.log(split="valid", **metrics, seconds=round(seconds, 3))
        self.valid = {**metrics, "step": self.step}
        if self.progress:
            for line in shown:
                tqdm.write(line, file=sys.stderr)
        self.watch_overfitting(metrics.get("objective", metrics["loss"]))
        return metrics

    def note_training_loss(self, stats: dict) -> None:
        """Keep the held-out loss's training twin for :meth:`watch_overfitting`: the loss, or for a
        VAE the objective at full KL weight (free bits still in it, so a code filling up to its
        floor counts as learning, as training counts it), or without free bits its negative ELBO."""
        self.train_losses.append(stats.get("objective", stats.get("neg_elbo", stats["loss"])))

    def watch_overfitting(self, valid_loss: float) -> None:
        """Warn once when the held-out loss has risen at two validations in a row while the
        training loss fell: the model is learning its training items by heart."""
        train = sum(self.train_losses) / len(self.train_losses) if self.train_losses else None
        self.train_losses = []
        self.curve.append((valid_loss, train))
        if self.warned_overfitting or len(self.curve) < 3 or None in [t for _, t in self.curve[-3:]]:
            return
        (v0, t0), (v1, t1), (v2, t2) = self.curve[-3:]
        if v0 < v1 < v2 and t0 > t1 > t2:
            self.warned_overfitting = True
            kept = (f"{self.run_dir / BEST_FILE} keeps the best weights so far (step {self.best_step})"
                    if self.best_step is not None else f"{BEST_FILE} will keep the best weights")
            tqdm.write(f"warning: held-out loss rose at two validations in a row ({v0:.3f} -> {v2:.3f}) while "
                       f"training loss fell ({t0:.3f} -> {t2:.3f}): the model is overfitting; {kept}. More "
                       "data, more --dropout or a smaller --hidden help", file=sys.stderr)

    def _calibrate(self, started: float, step_time: float) -> None:
        """Fix the number of steps that fits the time budget, now that a step has been timed."""
        val_start = time.perf_counter()
        self.validate_now()
        val_time = time.perf_counter() - val_start
        left = self.config.minutes * 60 - (time.perf_counter() - started)
        per_step = step_time + val_time / self.config.valid_every
        total = max(self.step + 1, self.step + int(left / per_step))
        self.total = distributed.broadcast_int(total, self.device)  # every rank stops together

    def fit(self, stop_at: int | None = None) -> dict:
        """Train until the planned number of steps (or ``stop_at``, to simulate an interruption);
        returns the final held-out metrics. Ctrl-C or SIGTERM saves a checkpoint before stopping."""
        with terminate_as_interrupt():
            return self._fit(stop_at)

    def _fit(self, stop_at: int | None) -> dict:
        self.model.train()
        config = self.config
        started = time.perf_counter()
        bar = tqdm(total=self.total, initial=self.step, disable=not (self.progress and self.main), unit="step",
                   dynamic_ncols=True, desc="train")
        window_start, window_tokens, timed_from = time.perf_counter(), 0, None
        saved_at = time.perf_counter()
        try:
            while self.total is None or self.step < self.total:
                if stop_at is not None and self.step >= stop_at:
                    break
                for group in self.optimizer.param_groups:
                    group["lr"] = learning_rate(config, self.step, self.total)
                if self.before_step is not None:
                    self.before_step(self.step)
                batch = self.data.batch(self.step, self.rank).to(self.device, non_blocking=True)
                with self.autocast:
                    if config.carry:  # the windows continue the last step's: so does the state
                        stats = self.compute_loss(batch, self.step, carry=True,
                                                  state=None if self.data.fresh(self.step) else self.carried)
                        self.carried = stats.pop("state")
                    else:
                        stats = self.compute_loss(batch, self.step)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(stats["loss"]).backward()
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.ema is not None:
                    self._update_ema()
                self.step += 1
                if self.total is None and self.step == 1 and time.perf_counter() - started > config.minutes * 60:
                    took = time.perf_counter() - started
                    raise GenseqError(f"--minutes {config.minutes:g} is shorter than one training step, which took "
                                      f"{took:.1f} s here; give --minutes {max(1.0, 30 * took / 60):.0f} or more "
                                      "(a run needs a few hundred steps to learn), or --steps")
                window_tokens += batch[:, 1:].numel() * self.world
                bar.update(1)

                if self.total is None and self.step == 3:
                    timed_from = time.perf_counter()  # skip the first, slower steps
                if self.total is None and self.step == self.calibration_steps:
                    step_time = (time.perf_counter() - timed_from) / (self.step - 3)
                    self._calibrate(started, step_time)
                    bar.total = self.total
                    bar.refresh()
                if self.step % config.log_every == 0 or self.step == self.total:
                    loss = stats["loss"].item()
                    if not math.isfinite(loss):
                        raise GenseqError(f"training loss became {loss} at step {self.step}; the last "
                                          "good checkpoint is kept, resume with a lower --lr")
                    rate = window_tokens / (time.perf_counter() - window_start)
                    window_start, window_tokens = time.perf_counter(), 0
                    stats = {k: round(v.item(), 4) for k, v in stats.items()}
                    self.note_training_loss(stats)
                    self.log(split="train", **stats, lr=self.optimizer.param_groups[0]["lr"],
                              tokens_per_s=round(rate))
                    bar.set_postfix(**{k: f"{v:.3f}" for k, v in stats.items()}, tok_s=f"{rate:,.0f}",
                                    refresh=False)
                if self.step % config.valid_every == 0 or self.step == self.total:
                    self.validate_now()
                    self.save()
                    saved_at = time.perf_counter()
                elif time.perf_counter() - saved_at > config.checkpoint_minutes * 60:
                    self.save()  # a kill between validations loses at most this much work
                    saved_at = time.perf_counter()
        except KeyboardInterrupt:
            bar.close()
            self.save()
            raise GenseqError(f"interrupted at step {self.step}; a checkpoint is saved in "
                              f"{self.run_dir}, continue with --resume") from None
        bar.close()
        if self.valid is None or self.valid["step"] != self.step:
            self.validate_now()
            self.save()
        return self.valid
