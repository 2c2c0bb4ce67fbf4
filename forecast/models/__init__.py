"""Forecasting models: baselines, AR(τ) via statsmodels, and the PyTorch latent-autoregressive nets."""
