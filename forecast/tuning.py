"""`forecast tune`: Optuna's TPE sampler over a documented search space per model, every trial a rolling-origin
backtest on the training data only (the last folds before the holdout, never the holdout itself), logged as a child
run of one parent run; hopeless net trials pruned from their per-epoch validation MAE. The best configuration is
then trained once more as `forecast train` would (scored on the holdout, fitted on all of the data) and its model
logged to the parent run too. The study lives in MLflow: `--resume PARENT` rebuilds it from the finished trials."""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import pandas as pd

from forecast import registry
from forecast.data import ID
from forecast.data.splits import scorable_folds
from forecast.errors import DataError, ModelError

# name -> ("int", low, high, step) | ("log", low, high) | ("float", low, high) | ("choice", [values])
NET_SPACE = {  # sizes up to the defaults' and a little past: a trial must fit a budget of minutes on a laptop
    "lookback_factor": ("choice", [0.75, 1.0, 1.5, 2.0]),  # times the default lookback (forecast.models.neural)
    "hidden_size": ("choice", [32, 64]),
    "layers": ("int", 1, 2, 1),
    "lr": ("log", 3e-4, 3e-3),
    "dropout": ("float", 0.0, 0.3),
    "epochs": ("int", 10, 30, 10),
    "loss": ("choice", ["mae", "mase", "smape"]),
    "ensemble": ("choice", [1, 2]),
    "combine": ("choice", ["auto", "none"]),  # with a statistical partner (chosen on validation windows) or not
}
HEAD_SPACE = {"head": ("choice", ["local", "linear"])}  # the nets' head, searched where there are future covariates
SPACES = {
    **{name: NET_SPACE for name in registry.NEURAL},
    "ar": {"max_lags": ("int", 2, 36, 1), "ic": ("choice", ["aic", "bic"]), "diff": ("choice", [None, 0, 1]),
           "log": ("choice", [False, True])},
    "gbm": {"lookback_factor": ("choice", [0.75, 1.0, 1.5, 2.0]), "learning_rate": ("log", 0.02, 0.3),
            "max_leaf_nodes": ("choice", [15, 31, 63]), "min_samples_leaf": ("choice", [20, 50, 100, 200]),
            "l2_regularization": ("choice", [0.0, 0.1, 1.0]), "loss": ("choice", ["mae", "mse"])},
}
# validation origins per trial: 4 transferred better than 2 to the next window in a nested validation on M3
# quarterly and yearly (2026-12-06, README "Tuning, gbm and combinations")
FOLDS = 4
# the final model: the mean of the best TOP trials' configurations, each trained once more (on the same nested
# validation the mean of three held the next window better than the best alone; README "Tuning, gbm and combinations")
TOP = 3
TRIAL = "forecast.trial"  # tags of a trial's run: its number and its parameters (JSON)
TRIAL_PARAMS = "forecast.trial_params"


def parse_duration(text) -> float | None:
    """Seconds from '90', '90s', '20m', '1.5h' (None stays None)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match:
        raise DataError(f"--timeout {text}: give seconds, or a number with s, m or h (e.g. 20m)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def distributions(space: dict) -> dict:
    import optuna.distributions as d

    out = {}
    for name, (kind, *args) in space.items():
        if kind == "int":
            out[name] = d.IntDistribution(args[0], args[1], step=args[2])
        elif kind == "log":
            out[name] = d.FloatDistribution(args[0], args[1], log=True)
        elif kind == "float":
            out[name] = d.FloatDistribution(args[0], args[1])
        else:
            out[name] = d.CategoricalDistribution(args[0])
    return out


def suggest(trial, name: str, spec: tuple):
    """A trial's value for one entry of a search space (the same distributions as `distributions`)."""
    kind, *args = spec
    if kind == "int":
        return trial.suggest_int(name, args[0], args[1], step=args[2])
    if kind in ("log", "float"):
        return trial.suggest_float(name, args[0], args[1], log=kind == "log")
    return trial.suggest_categorical(name, args[0])


def settings(sampled: dict, h: int, season: int) -> dict:
    """The model's settings from a trial's sampled values (a lookback factor becomes a lookback)."""
    from forecast.windows import default_lookback

    out = dict(sampled)
    factor = out.pop("lookback_factor", None)
    if factor is not None:
        out["lookback"] = max(2, round(factor * default_lookback(h, season)))
    return out


def _option(name: str) -> str:
    """The `forecast train` option of a setting or data option: --hidden-size, --target (target_col)."""
    return "--target" if name == "target_col" else "--" + name.replace("_", "-")


def command(path, model: str, h: int, best: dict, columns: dict | None = None, test_path=None) -> str:
    """The `forecast train` command that trains the best configuration (to the same saved model): the data read as
    the search read it (`columns`: forecast.api.DATA_OPTIONS, covariates included) and scored on `test_path`."""
    parts = ["forecast train", shlex.quote(str(path)), "--model", model, "--horizon", str(h)]
    for name, value in (columns or {}).items():
        option = _option(name)
        if value is True:
            parts.append(option)
        elif value not in (None, False, "", [], ()):
            text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            parts += [option, shlex.quote(text)]
    if test_path is not None:
        parts += ["--test", shlex.quote(str(test_path))]
    for name, value in best.items():
        option = _option(name)
        if isinstance(value, bool):
            parts.append(option if value else "--no-" + option[2:])
        elif isinstance(value, (list, dict)):  # a combination's members' settings
            parts += [option, shlex.quote(json.dumps(value))]
        elif value is not None:
            parts += [option, repr(value) if isinstance(value, float) else str(value)]
    return " ".join(parts)


@dataclass
class TuneResult:
    run_id: str  # the parent run
    best_params: dict  # the model's settings
    best_value: float  # the validation metric of the best trial
    trials: pd.DataFrame  # number, state, value, run_id and the sampled values
    final: object | None  # the TrainResult of the final model (None when stopped before)
    command: str
    seconds: float
    final_params: list | None = None  # the settings of each configuration of the final model, best first


def tune(path, model: str = "gru", horizon: int | None = None, *, trials: int = 30, timeout=None,
         metric: str = "smape", folds: int | None = None, top: int | None = None, resume: str | None = None,
         test_path=None,
         experiment: str | None = None, tracking_uri: str | None = None, seed: int = 1, echo=print,
         on_trial=None, **options) -> TuneResult:
    """Search `model`'s settings for the lowest validation `metric` over `trials` trials (or until `timeout`:
    seconds or '20m'), each a backtest on `folds` (default FOLDS) origins carved from the data before the holdout
    (the test file's origin, or the last `horizon` points); then train the best `top` (default TOP) configurations
    once more, as one model: the best alone where `top` is 1 or one trial finished, else the mean of their
    forecasts (a combination). `on_trial(number, value)` after each."""
    from forecast import api, tracking

    if model not in SPACES:
        raise ModelError(f"--model {model}: nothing to tune (no settings to search); choose one of "
                         f"{', '.join(SPACES)}")
    if metric not in api.METRICS:
        raise DataError(f"--metric {metric}: choose one of {', '.join(api.METRICS)}")
    top = TOP if top is None else top
    if trials < 1 or top < 1 or (folds is not None and folds < 1):
        raise DataError("--trials, --top and --folds must be at least 1")
    seconds = parse_duration(timeout)
    columns, fixed = api.split_options(options)
    fixed = {k: v for k, v in fixed.items() if v is not None}
    final_options = {k: fixed.pop(k) for k in ("levels", "quantiles", "register") if k in fixed}
    space = {k: v for k, v in SPACES[model].items() if k not in fixed and not (k == "lookback_factor" and
                                                                                 "lookback" in fixed)}
    registry.create(model, **fixed)  # bad fixed settings refused before anything runs
    data = api.load(path, **columns)
    test = api.load_test(test_path, data, columns) if test_path is not None else None
    h = api.resolve_horizon(horizon, data, test)
    if model in registry.NEURAL and (data.covariates.futr or data.covariates.calendar) and "head" not in fixed:
        space.update(HEAD_SPACE)  # how the future covariates reach the forecasts matters only where there are some
    # the validation data: the holdout (the last h points) cut off, unless the holdout is the test file
    carved = data.df if test is not None else data.df[data.df.groupby(ID, sort=False).cumcount(ascending=False)
                                                      >= h].reset_index(drop=True)
    validation = replace(data, df=carved)
    if folds is None:  # the default: as many of FOLDS origins as the longest series can be scored at
        folds = scorable_folds(int(validation.lengths().max()), h, h, FOLDS)
        if folds < FOLDS:
            echo(f"validation: {folds} fold(s) of {h}, as many as the longest series allows (default {FOLDS})")
    experiment = experiment or Path(path).stem
    params = {"model": model, "tune_metric": metric, "tune_folds": folds, "horizon": h, "data_sha256": data.sha256,
              "tune_top": top,
              "search_space": json.dumps(space), "fixed": json.dumps(fixed, sort_keys=True)}
    started = time.perf_counter()
    deadline = None if seconds is None else started + seconds  # of the whole search, the setup included
    with tracking.parent_run(experiment, run_name=f"tune-{model}", uri=tracking_uri, run_id=resume) as parent:
        if resume:
            done = _finished_trials(parent, params, metric)
        else:
            parent.log_params({**params, "trials": trials, "timeout_seconds": seconds, "seed": seed,
                               "test_file": str(test_path) if test_path else None})
            parent.log_dataset(data.df, data.path, data.sha256)
            done = []
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed + len(done))
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)
        study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        dists = distributions(space)
        for values, value in done:
            study.add_trial(optuna.trial.create_trial(params=values, distributions=dists, value=value))
        if done:
            echo(f"resuming: {len(done)} finished trial(s), best {metric} {study.best_value:.4g}")

        def objective(trial):
            sampled = {name: suggest(trial, name, spec) for name, spec in space.items()}
            hyper = {**fixed, **settings(sampled, h, data.freq.season)}
            number = trial.number + 1
            pruning = _Pruning(trial, deadline)
            echo(f"trial {number}: {json.dumps(hyper)}")
            try:
                result = api.backtest(path, model, h, folds=folds, final_fit=False, experiment=experiment,
                                      tracking_uri=tracking_uri, run_name=f"trial-{number}",
                                      parent_run_id=parent.run_id, data=validation, on_epoch=pruning, light=True,
                                      tags={TRIAL: number, TRIAL_PARAMS: json.dumps(sampled)}, **hyper)
            except Pruned as exc:
                echo(f"  {exc}")
                raise
            value = float(result.metrics[metric])
            echo(f"  {metric} {value:.4g} ({result.train_seconds:.1f} s)")
            return value

        def after(study, frozen):
            if frozen.state == optuna.trial.TrialState.COMPLETE and study.best_trial.number == frozen.number:
                best = settings(frozen.params, h, data.freq.season)
                parent.set_tags({"best_trial": frozen.number + 1, "best_params": json.dumps({**fixed, **best})})
            if frozen.state == optuna.trial.TrialState.COMPLETE:
                parent.log_metrics({f"best_{metric}": study.best_value}, step=frozen.number + 1)
            if on_trial is not None:
                on_trial(frozen.number + 1, frozen.value)

        left = trials - len(done)
        if left > 0:  # Optuna's clock starts here, the budget's at the start: no trial starts after the deadline
            study.optimize(objective, n_trials=left, callbacks=[after], catch=(ModelError,),
                           timeout=None if deadline is None else max(deadline - time.perf_counter(), 0.0))
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise ModelError(f"tune: no trial of {model} finished; see the failed trials' runs in "
                             f"experiment '{experiment}'")
        ranked = sorted(complete, key=lambda t: (t.value, t.number))[:top]  # the best first, as Optuna's
        chosen = [{**fixed, **settings(t.params, h, data.freq.season)} for t in ranked]
        best = chosen[0]
        final_model, final_settings = model, best
        if len(chosen) > 1:
            final_model = "combination"
            final_settings = {"members": ",".join([model] * len(chosen)), "how": "mean", "params": chosen}
        table = pd.DataFrame([{"trial": t.number + 1, "state": t.state.name, metric: t.value, **t.params}
                              for t in study.trials])
        parent.log_frame(table, "trials.csv")
        parent.log_metrics({"trials_finished": len(complete), "tune_seconds": time.perf_counter() - started})
        what = ("it" if len(chosen) == 1 else f"the mean of the best {len(chosen)} (trials "
                f"{', '.join(str(t.number + 1) for t in ranked)})")
        echo(f"best trial {ranked[0].number + 1} of {len(study.trials)}: {metric} {ranked[0].value:.4g}; "
             f"training {what} on all of the data ...")
        final = api.backtest(path, final_model, h, test_path=test_path, experiment=experiment,
                             tracking_uri=tracking_uri, run_name=f"{model}-best" if len(chosen) == 1 else
                             f"{model}-top{len(chosen)}", parent_run_id=parent.run_id, data=data, test=test,
                             **final_settings, **final_options)
        parent.log_metrics({f"holdout_{k}": v for k, v in final.metrics.items() if k in api.METRICS})
        parent.set_tags({"best_run_id": final.run_id})
        model_uri, _ = api.log_fitted(parent, final, data)
        final.model_uri = model_uri
    return TuneResult(run_id=parent.run_id, best_params=best, best_value=float(ranked[0].value), trials=table,
                      final=final, command=command(path, final_model, h, final_settings, columns, test_path),
                      seconds=time.perf_counter() - started, final_params=chosen)


class _Pruning:
    """on_epoch for a trial: the per-epoch validation MAE (in the nets' transformed space, whatever the trial's
    --loss, so that trials of different losses compare) of the first fold's (first member's) training reported to
    Optuna, which may stop the trial (its run then ends KILLED); a trial still training when the budget (`deadline`,
    time.perf_counter's) runs out is stopped too."""

    def __init__(self, trial, deadline: float | None = None):
        self.trial, self.deadline, self.last, self.done = trial, deadline, 0, False

    def __call__(self, epoch, metrics):
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise Pruned(f"stopped at epoch {epoch}: the --timeout budget ran out")
        if self.done or epoch <= self.last or "val_mae" not in metrics:
            self.done = self.done or epoch <= self.last
            return
        self.last = epoch
        self.trial.report(float(metrics["val_mae"]), epoch)  # the same measure whatever the trial's --loss
        if self.trial.should_prune():
            raise Pruned(f"pruned at epoch {epoch}: validation MAE {metrics['val_mae']:.4g} worse than the median "
                         "of earlier trials")


class Pruned(optuna.TrialPruned):
    ends_killed = True  # forecast.tracking ends the run KILLED rather than FAILED


def _finished_trials(parent, params: dict, metric: str) -> list[tuple[dict, float]]:
    """The sampled values and metric of the parent's finished trials, refusing a parent of another study."""
    from mlflow.entities import ViewType

    run = parent.client.get_run(parent.run_id)
    logged = run.data.params
    different = [k for k, v in params.items() if k in logged and logged[k] != str(v)]
    if "model" not in logged or different:
        raise DataError(f"--resume {parent.run_id}: not a tune run of this command (it differs in "
                        f"{', '.join(different) or 'everything'}); give the same data, model and options")
    children = parent.client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.run_id}'",
                                         run_view_type=ViewType.ACTIVE_ONLY, max_results=5000)
    done = []
    for child in children:
        if child.info.status == "FINISHED" and TRIAL_PARAMS in child.data.tags and metric in child.data.metrics:
            done.append((json.loads(child.data.tags[TRIAL_PARAMS]), float(child.data.metrics[metric])))
    return done
