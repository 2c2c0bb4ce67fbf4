"""Backpropagation through time made visible: how much gradient reaches each step of the past.

For the recurrent nets the measure is ‖∂L/∂h_{T−k}‖, the gradient of the loss with respect to the hidden state k
steps before the end of the window; for the Transformer, ‖∂L/∂x_{T−k}‖ with respect to the input at lag k.
Both are averaged over a fixed probe batch, one extra forward and backward pass per measurement.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def lag_gradients(net, x: torch.Tensor, y: torch.Tensor, tbptt: int | None = None) -> np.ndarray:
    """(L,) mean over the batch of the gradient norm at lag k = 0 (the last step) ... L-1 (the first)."""
    was_training = net.training
    net.eval()  # no dropout: the probe measures the net, not the noise
    try:
        # cuDNN's RNN refuses a backward pass in eval mode; its plain implementation gives the same gradients
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            if hasattr(net, "unrolled"):
                pred, states = net.unrolled(x, tbptt)  # states: L tensors (layers, B, H), oldest first
                loss = (pred - y).abs().mean(dim=1).sum()  # per-window MAE, summed: per-window gradients
                grads = torch.autograd.grad(loss, states, allow_unused=True)
                norms = [torch.zeros(x.shape[0]) if g is None else g.permute(1, 0, 2).flatten(1).norm(dim=1).cpu()
                         for g in grads]  # L x (B,)
                per_step = torch.stack(norms, dim=1)  # (B, L)
            else:
                x = x.detach().clone().requires_grad_(True)
                loss = (net(x) - y).abs().mean(dim=1).sum()
                (grad,) = torch.autograd.grad(loss, x)
                per_step = grad.abs()[:, :getattr(net, "lookback", grad.shape[1])].cpu()  # (B, L): y, not covariates
    finally:
        net.train(was_training)
    return per_step.mean(dim=0).flip(0).numpy().astype(float)  # lag 0 first


def half_life(norms: np.ndarray) -> float:
    """The first lag at which the gradient norm falls to half of lag 0's (NaN when it never does)."""
    below = np.flatnonzero(norms <= norms[0] / 2)
    return float(below[0]) if len(below) else float("nan")


def ratio_last_first(norms: np.ndarray) -> float:
    """‖∂L/∂h_{T−lookback+1}‖ / ‖∂L/∂h_T‖: how much of the gradient reaches the start of the window."""
    return float(norms[-1] / norms[0]) if norms[0] > 0 else float("nan")


class GradientProbe:
    """Measures the gradient flow by lag on one fixed batch at epochs 1, 2, 4, 8, ... and once at the end."""

    def __init__(self, net, x: torch.Tensor, y: torch.Tensor, tbptt: int | None):
        self.net, self.x, self.y, self.tbptt = net, x, y, tbptt
        self.rows: list[tuple[str, np.ndarray]] = []

    @staticmethod
    def due(epoch: int) -> bool:
        return epoch & (epoch - 1) == 0  # powers of two

    def measure(self, label: str) -> np.ndarray:
        norms = lag_gradients(self.net, self.x, self.y, self.tbptt)
        self.rows.append((label, norms))
        return norms

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"epoch": label, "lag": lag, "grad_norm": value}
                             for label, norms in self.rows for lag, value in enumerate(norms)])

    def summary(self) -> dict:
        final = self.rows[-1][1]
        return {"grad_ratio_last_first": ratio_last_first(final), "grad_half_life": half_life(final)}
