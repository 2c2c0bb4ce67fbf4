#!/usr/bin/env python3
"""On which windows should the model that `forecast train` saves choose its statistical partner and weight? On the
validation split only (the last horizon of every training series is scored; never a test file).

`forecast train` scores a fit on the data less its last horizon (the holdout), which chooses the nets' partner and
weight on the horizon before that (its validation window); the model it saves is fitted again on all of the data
and inherits that choice (A). This fits both as train does, then chooses again on the holdout alone, the latest
window (B), and on the validation window and the holdout pooled (C), and scores the saved model's forecasts of
the validation split under each:

    python3 benchmarks/final_choice.py --subset all --models rnn lstm gru transformer --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402

from forecast import registry  # noqa: E402
from forecast.data import split_holdout  # noqa: E402
from forecast.metrics import evaluate  # noqa: E402
from forecast.models.partner import KINDS, choose_partner, fit_partner, partner_forecast, statistical_parts  # noqa: E402
from forecast.transforms import Stacked  # noqa: E402
from forecast.windows import validation_length  # noqa: E402


def window(model, ids, histories, actual, h):
    """What choose_partner reads of one window: the histories, the truth, the net's forecasts, each partner's."""
    transforms, scaled = model._transformed(histories)
    stacked = Stacked(transforms)
    ar = fit_partner(ids, histories, model.freq_, h, model)._forecast(ids, histories, h)
    parts = statistical_parts(KINDS, histories, stacked, scaled, h, model.freq_.season)
    return (histories, actual, stacked.inverse(model._net_z(ids, scaled, h)),
            {k: partner_forecast(k, ar, **parts) for k in KINDS})


def pooled(a, b):
    return (a[0] + b[0], np.vstack([a[1], b[1]]), np.vstack([a[2], b[2]]),
            {k: np.vstack([a[3][k], b[3][k]]) for k in a[3]})


def run(subset: str, name: str) -> dict:
    data, truth, freq = accuracy.split(subset, "validation")
    h, m = accuracy.HORIZONS[subset], freq.season
    part, holdout = split_holdout(data, h)
    scored = registry.create(name, diagnostics=False)
    scored.fit(part, freq, h)
    ids, series = scored.ids_, scored.series_
    long = [i for i, s in enumerate(series) if len(s) >= validation_length(h)]
    validation = window(scored, [ids[i] for i in long], [series[i][:-h] for i in long],
                        np.stack([series[i][-h:] for i in long]), h)
    held = {k: g["y"].to_numpy(float) for k, g in holdout.groupby("unique_id", sort=False)}
    by_id = dict(zip(ids, series))
    kept = [i for i in ids if len(held.get(i, ())) == h]
    latest = window(scored, kept, [by_id[i] for i in kept], np.stack([held[i] for i in kept]), h)
    final = registry.create(name, diagnostics=False, **scored.final_settings())
    final.fit(data, freq, h)
    final.inherit(scored)
    row = {"subset": subset, "model": name}
    for label, chosen_on in (("A inherited", None), ("B holdout", latest), ("C both", pooled(validation, latest))):
        if chosen_on is not None:
            final.partner_kind_, final.combine_weight_, _ = choose_partner(*chosen_on, m)
        row[label] = round(evaluate(data, truth, final.predict(h), m)["mase"], 4)
        row[label[0] + " choice"] = f"{final.partner_kind_}:{final.combine_weight_:g}"
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", nargs="+", default=["all"], choices=[*accuracy.HORIZONS, "all"])
    ap.add_argument("--models", nargs="+", default=list(accuracy.NETS))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    subsets = [s for s in accuracy.HORIZONS if "all" in args.subset or s in args.subset]
    rows = pd.DataFrame([run(subset, name) for subset in subsets for name in args.models])
    means = rows.groupby("subset", sort=False)[["A inherited", "B holdout", "C both"]].mean()
    with pd.option_context("display.width", 200):
        print(rows.to_string(index=False))
        print("\nmean validation MASE of the models, and the change against A (%)")
        print(pd.concat([means, (100 * (means[["B holdout", "C both"]].div(means["A inherited"], axis=0) - 1))
                         .add_suffix(" %")], axis=1).round(4).to_string())


if __name__ == "__main__":
    main()
