"""The one training loop for every neural model: batches, Adam, clipping, truncated BPTT, early stopping, and
checkpoints from which a killed training resumes to the same weights as one never stopped."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from forecast.errors import ModelError, TrainingDiverged, TrainingInterrupted

EpochCallback = Callable[[int, dict], None]


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 128
    steps_per_epoch: int | None = 50  # an epoch: one pass over the windows, or this many batches if fewer
    lr: float = 1e-3
    clip: float | None = 1.0  # max gradient norm; None or 0: no clipping
    tbptt: int | None = None  # truncate backpropagation through time to the last K steps
    patience: int = 10  # epochs without validation improvement before stopping
    seed: int = 1
    device: str = "auto"
    loss: str = "mae"  # mae; smape: 2 tanh(|yhat - y| / 2), exactly sMAPE where the targets are logs; mase: mae
    # weighted per window (the weights come with the windows: forecast.models.neural.mase_weights)
    schedule: str = "cosine"  # the learning rate: cosine decay over epochs x steps_per_epoch, or constant


LOSSES = ("mae", "smape", "mase")
SCHEDULES = ("cosine", "constant")


def _mean(errors: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The mean of (B, h) errors, each window's row weighted by `weights` (B,) when given."""
    if weights is None:
        return errors.mean()
    return (errors.mean(dim=1) * weights).sum() / weights.sum()


def mae_loss(yhat: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    return _mean((yhat - y).abs(), weights)


def smape_loss(yhat: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """sMAPE / 100 between exp(yhat) and exp(y), from the logs: 2|a - b| / (a + b) = 2 tanh(|log a - log b| / 2)."""
    return _mean(2 * torch.tanh((yhat - y).abs() / 2), weights)


def loss_function(name: str):
    if name in ("mae", "mase"):  # mase: the windows carry their weights
        return mae_loss
    if name == "smape":
        return smape_loss
    raise ModelError(f"--loss {name}: unknown; choose one of {', '.join(LOSSES)}")


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    steps: int = 0  # optimizer steps taken
    seconds: float = 0.0  # wall time of the training steps and validations
    resumed_at: int = 0  # the epoch a resumed training continued after (0: not resumed)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ModelError(f"--device {device}: not a torch device (use cpu, cuda or cuda:N)") from None


@dataclass
class Checkpoints:
    """Where trainings save their state (`folder`, one file per training `key`), at most every `every` seconds and
    once more when done, handing each file to `saved` (e.g. to log it to the run); `resume_from` is the folder of
    an earlier run's checkpoints to continue from."""

    folder: Path
    every: float = 60.0
    saved: Callable[[Path], None] | None = None
    resume_from: Path | None = None

    def load(self, key: str) -> dict | None:
        path = self.resume_from / f"{key}.pt" if self.resume_from is not None else None
        if path is None or not path.is_file():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def save(self, key: str, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.pt"
        partial = path.with_suffix(".tmp")
        torch.save(state, partial)
        partial.replace(path)  # never a half-written checkpoint
        if self.saved is not None:
            self.saved(path)


class BatchSampler:
    """Shuffled batches of window indices; an epoch ends after a full pass or `steps` batches, and the next
    epoch continues the same pass, so every window is visited before any is seen twice."""

    def __init__(self, n: int, batch_size: int, steps: int | None, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator
        per_pass = -(-n // batch_size)
        self.steps = min(steps, per_pass) if steps else per_pass
        self.order, self.cursor = torch.randperm(n, generator=generator), 0

    def epoch(self):
        for _ in range(self.steps):
            if self.cursor >= self.n:
                self.order, self.cursor = torch.randperm(self.n, generator=self.generator), 0
            yield self.order[self.cursor:self.cursor + self.batch_size]
            self.cursor += self.batch_size


def make_scheduler(optimizer, schedule: str, total_steps: int):
    """The per-step learning-rate schedule (None for a constant rate)."""
    if schedule == "constant":
        return None
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    raise ModelError(f"--schedule {schedule}: unknown; choose one of {', '.join(SCHEDULES)}")


@torch.no_grad()
def evaluate_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, batch_size: int,
                  w: torch.Tensor | None = None) -> tuple[float, float]:
    """(`loss_fn` over the windows (x, y), each weighted by `w` when given; their plain mean absolute error), from
    one pass of the net."""
    net.eval()
    total = plain = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        wb = None if w is None else w[start:start + batch_size]
        out = net(xb)
        total += loss_fn(out, yb, wb).item() * (len(xb) if wb is None else wb.sum().item())
        plain += (out - yb).abs().mean().item() * len(xb)
    return total / max(len(x) if w is None else w.sum().item(), 1e-12), plain / max(len(x), 1)


def fit_network(net: nn.Module, train: tuple[np.ndarray, ...], val: tuple[np.ndarray, ...] | None,
                cfg: TrainConfig, on_epoch: EpochCallback | None = None, checkpoints: Checkpoints | None = None,
                key: str = "net") -> History:
    """Train `net` (inputs (B, L) -> forecasts (B, h)) with cfg.loss and Adam; keep the weights of the best validation
    epoch, or of the last epoch when `val` is None (then the epochs and the schedule alone decide the end).
    `train` and `val` are (X, Y) or (X, Y, W): W (N,) weighs each window in the loss.

    `on_epoch(epoch, metrics)` is called after every epoch with train_loss, val_loss and the gradient norm before
    clipping (grad_norm_mean, grad_norm_max, clipped_fraction). The weights are left at the best epoch's, also
    when training stops early, diverges (TrainingDiverged) or is interrupted.

    With `checkpoints`, the whole state (weights, optimizer, schedule, early stopping, batch order, random
    generators) is saved under `key` after an epoch at most every `checkpoints.every` seconds and when done; a
    training that finds its key among `checkpoints.resume_from` continues from there (a finished one is not run
    again) and ends with the weights an uninterrupted training would have.
    """
    device = resolve_device(cfg.device)
    generator = torch.Generator().manual_seed(cfg.seed)
    net.to(device)
    x_train = torch.as_tensor(train[0], device=device)  # (N, L)
    y_train = torch.as_tensor(train[1], device=device)  # (N, h)
    w_train = torch.as_tensor(train[2], device=device) if len(train) > 2 else None  # (N,)
    if val is not None:
        x_val = torch.as_tensor(val[0], device=device)  # (S, L)
        y_val = torch.as_tensor(val[1], device=device)  # (S, h)
        w_val = torch.as_tensor(val[2], device=device) if len(val) > 2 else None  # (S,)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    loss_fn = loss_function(cfg.loss)
    history = History()
    best_state, best_val, stale = copy.deepcopy(net.state_dict()), float("inf"), 0
    max_norm = cfg.clip if cfg.clip else float("inf")
    epoch = 0
    started = time.perf_counter()
    batches = BatchSampler(len(x_train), cfg.batch_size, cfg.steps_per_epoch, generator)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs * batches.steps)

    def state(done: bool) -> dict:
        return {"epoch": epoch, "done": done, "net": net.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "best_state": best_state, "best_val": best_val, "stale": stale,
                "history": {"train_loss": history.train_loss, "val_loss": history.val_loss,
                            "best_epoch": history.best_epoch, "steps": history.steps},
                "order": batches.order, "cursor": batches.cursor, "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state()}

    first = 1
    resumed = checkpoints.load(key) if checkpoints is not None else None
    if resumed is not None:
        net.load_state_dict(resumed["net"])
        optimizer.load_state_dict(resumed["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resumed["scheduler"])
        best_state, best_val, stale = resumed["best_state"], float(resumed["best_val"]), int(resumed["stale"])
        for name, value in resumed["history"].items():
            setattr(history, name, value)
        batches.order, batches.cursor = resumed["order"], int(resumed["cursor"])
        generator.set_state(resumed["generator"])
        torch.set_rng_state(resumed["torch_rng"])
        epoch = first = int(resumed["epoch"])
        history.resumed_at = epoch
        if resumed["done"]:
            net.load_state_dict(best_state)
            net.eval()
            return history
        first += 1
    last_saved = time.monotonic()
    try:
        for epoch in range(first, cfg.epochs + 1):
            net.train()
            total, seen, norms = 0.0, 0, []
            for idx in batches.epoch():
                idx = idx.to(device)
                loss = loss_fn(net(x_train[idx], tbptt=cfg.tbptt), y_train[idx],
                               None if w_train is None else w_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = nn.utils.clip_grad_norm_(net.parameters(), max_norm)  # the norm before clipping
                if not (torch.isfinite(loss) and torch.isfinite(norm)):
                    raise TrainingDiverged(epoch, loss.item(), norm.item())
                optimizer.step()
                history.steps += 1
                if scheduler is not None:
                    scheduler.step()
                norms.append(norm.item())
                total += loss.item() * len(idx)
                seen += len(idx)
            metrics = {"train_loss": total / seen,
                       "grad_norm_mean": float(np.mean(norms)), "grad_norm_max": float(np.max(norms)),
                       "clipped_fraction": float(np.mean(np.asarray(norms) > max_norm)),
                       "lr": optimizer.param_groups[0]["lr"]}
            history.train_loss.append(metrics["train_loss"])
            # without validation windows the latest epoch is the best so far: the schedule decides the end
            score = metrics["train_loss"]
            if val is not None:  # val_mae: the same measure whatever the loss, for comparing trainings (tuning)
                score, metrics["val_mae"] = evaluate_loss(net, x_val, y_val, loss_fn, 4 * cfg.batch_size, w_val)
                metrics["val_loss"] = score
                history.val_loss.append(score)
            if not np.isfinite(score):
                raise TrainingDiverged(epoch, score, float("nan"))
            if val is None or score < best_val:
                best_val, stale, history.best_epoch = score, 0, epoch
                best_state = copy.deepcopy(net.state_dict())
            else:
                stale += 1
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if stale >= cfg.patience:
                break
            if checkpoints is not None and time.monotonic() - last_saved >= checkpoints.every:
                checkpoints.save(key, state(done=False))
                last_saved = time.monotonic()
        if checkpoints is not None:  # done: a resumed run takes these weights without training again
            checkpoints.save(key, state(done=True))
    except TrainingDiverged as exc:
        exc.best_epoch = history.best_epoch
        raise
    except KeyboardInterrupt:
        raise TrainingInterrupted(epoch, history.best_epoch) from None
    except RuntimeError as exc:  # torch's own failures mid-training (overflow, out of memory) as one line
        raise ModelError(f"training failed at epoch {epoch}: {str(exc).splitlines()[0]}; "
                         "lower --lr, --batch-size or --hidden-size") from None
    finally:
        history.seconds = time.perf_counter() - started
        net.load_state_dict(best_state)
        net.eval()
    return history
