"""Tables for people and programs: a frame as text, CSV, JSON or Markdown, metrics shown as mean ± std."""

from __future__ import annotations

import math

import pandas as pd

FORMATS = ("table", "csv", "json", "markdown")
METRICS = ("mase", "smape", "mape", "mae", "rmse", "msis", "sql", "coverage_80", "coverage_95")


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def with_spread(frame: pd.DataFrame) -> pd.DataFrame:
    """Metric columns as text, 'mean ± std' where the runs have a spread over folds; the std columns folded in."""
    out = frame.copy()
    for name in METRICS:
        if name not in out:
            continue
        spread = out.get(f"{name}_std")
        out[name] = [_number(m) + (f" ± {_number(s)}" if spread is not None and _number(s) else "")
                     for m, s in zip(out[name], spread if spread is not None else [None] * len(out))]
        out = out.drop(columns=[f"{name}_std"], errors="ignore")
    for name in out.columns:
        if pd.api.types.is_float_dtype(out[name]):
            out[name] = out[name].map(_number)
    return out.fillna("")


def markdown(frame: pd.DataFrame) -> str:
    cells = [[str(c) for c in frame.columns]] + [[str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in cells[0]) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines) + "\n"


def render(frame: pd.DataFrame, fmt: str) -> str:
    """`frame` as `fmt`: table (aligned text), csv, json (records) or markdown."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2) + "\n"
    text = with_spread(frame) if fmt in ("table", "markdown") else frame
    if fmt == "markdown":
        return markdown(text)
    return text.to_string(index=False) + "\n"
