"""YAML pipelines: several models backtested on one data set, as child runs of one parent run, and a leaderboard;
combinations of them (`combine`), which reuse their members' fits (forecast.fits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from forecast import registry
from forecast.covariates import ROLES  # covariates, per data set or per model
from forecast.data import Covariates
from forecast.errors import ForecastError

TOP_KEYS = ("name", "data", "horizon", "backtest", "metric", "models", "combine")
COMBINE_KEYS = ("name", "members", "how")
DATA_KEYS = ("path", "test", "id_col", "time_col", "target_col", "freq", "season", "fill", "aggregate", *ROLES)
BACKTEST_KEYS = ("folds", "step", "refit")
MODEL_KEYS = ("model", "label", "params", *ROLES)
METRICS = ("mase", "smape", "mape", "mae", "rmse", "msis", "sql")  # what a leaderboard can rank by, lowest first
SHOWN = METRICS + ("coverage_80", "coverage_95")  # the columns of a leaderboard (where the runs have them)


class PipelineError(ForecastError):
    """A pipeline file that cannot be run as written."""


@dataclass
class ModelSpec:
    label: str
    model: str
    params: dict = field(default_factory=dict)
    roles: dict | None = None  # the model's own covariate roles (any role key given), else the data set's

    def covariates(self, data: dict) -> dict:
        """The covariate roles this model is backtested with."""
        return {k: data.get(k) for k in ROLES} if self.roles is None else {k: self.roles.get(k) for k in ROLES}


@dataclass
class Pipeline:
    file: Path
    name: str
    data: dict
    horizon: int | None
    folds: int
    step: int | None
    refit: bool
    metric: str
    models: list[ModelSpec]
    combine: list[ModelSpec] = field(default_factory=list)  # model "combination", params naming the members


def _mapping(value, where: str, file: Path, keys: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise PipelineError(f"{file}: {where} must be a mapping with keys {', '.join(keys)}")
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise PipelineError(f"{file}: unknown key(s) {', '.join(map(str, unknown))} in {where}; "
                            f"valid keys: {', '.join(keys)}")
    return value


def _positive(value, where: str, file: Path, optional: bool = True):
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PipelineError(f"{file}: {where} must be a positive whole number, not {value!r}")
    return value


def load_pipeline(path) -> Pipeline:
    """Read and check a pipeline file completely, before anything is trained."""
    file = Path(path)
    if not file.is_file():
        raise PipelineError(f"{file}: no such pipeline file")
    try:
        doc = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PipelineError(f"{file}: not valid YAML{where}; check the indentation and quoting") from None
    doc = _mapping(doc, "the file", file, TOP_KEYS)
    for required in ("data", "models"):
        if required not in doc:
            raise PipelineError(f"{file}: missing '{required}'")
    data = dict(_mapping(doc["data"], "data", file, DATA_KEYS))
    if "path" not in data:
        raise PipelineError(f"{file}: data needs a 'path' (relative to the pipeline file)")
    for key in ("path", "test"):
        if key in data:
            resolved = (file.parent / str(data[key])).resolve()
            if not resolved.is_file():
                raise PipelineError(f"{file}: data {key} '{data[key]}' not found (looked for {resolved})")
            data[key] = resolved
    backtest = _mapping(doc.get("backtest") or {}, "backtest", file, BACKTEST_KEYS)
    metric = doc.get("metric", "smape")
    if metric not in METRICS:
        raise PipelineError(f"{file}: metric '{metric}' is not one of {', '.join(METRICS)}")
    if not isinstance(doc["models"], list) or not doc["models"]:
        raise PipelineError(f"{file}: models must be a non-empty list of {{model: NAME, label: ..., params: {{...}}}}")
    models = []
    for i, entry in enumerate(doc["models"], start=1):
        if isinstance(entry, str):
            entry = {"model": entry}
        entry = _mapping(entry, f"models[{i}]", file, MODEL_KEYS)
        name = entry.get("model")
        if name not in registry.MODELS:
            raise PipelineError(f"{file}: models[{i}]: unknown model {name!r}; "
                                f"choose one of {', '.join(registry.MODELS)}")
        params = entry.get("params") or {}
        if not isinstance(params, dict):
            raise PipelineError(f"{file}: models[{i}].params must be a mapping of hyperparameters")
        try:
            registry.create(name, **params)
        except ForecastError as exc:
            raise PipelineError(f"{file}: models[{i}] ({name}): {exc}") from None
        except TypeError as exc:
            raise PipelineError(f"{file}: models[{i}] ({name}): bad params ({exc})") from None
        roles = {k: entry[k] for k in ROLES if k in entry} or None
        models.append(ModelSpec(label=str(entry.get("label") or name), model=name, params=params, roles=roles))
    labels = [m.label for m in models]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise PipelineError(f"{file}: label(s) {', '.join(duplicated)} used twice; give each model its own label")
    combine = _combinations(doc.get("combine"), models, data, file)
    labels += [c.label for c in combine]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise PipelineError(f"{file}: name(s) {', '.join(duplicated)} used twice; give each combination its own name")
    return Pipeline(file=file, name=str(doc.get("name") or file.stem), data=data,
                    horizon=_positive(doc.get("horizon"), "horizon", file),
                    folds=_positive(backtest.get("folds", 1), "backtest.folds", file, optional=False),
                    step=_positive(backtest.get("step"), "backtest.step", file),
                    refit=bool(backtest.get("refit", True)), metric=metric, models=models, combine=combine)


def _described(covariates: Covariates) -> str:
    """The covariates as the plan and the errors show them: "futr a,b, calendar"; "" for none."""
    roles = [f"{role} {','.join(getattr(covariates, role))}" for role in ("futr", "hist", "static")
             if getattr(covariates, role)]
    return ", ".join(roles + (["calendar"] if covariates.calendar else []))


def _combinations(value, models: list[ModelSpec], data: dict, file: Path) -> list[ModelSpec]:
    """The `combine` entries (one mapping or a list of them) as specs of the model "combination", their members
    (labels of the pipeline's models, each a different model, all with the same covariates) resolved."""
    if value is None:
        return []
    entries = value if isinstance(value, list) else [value]
    by_label = {m.label: m for m in models}
    out = []
    for i, entry in enumerate(entries, start=1):
        entry = _mapping(entry, f"combine[{i}]", file, COMBINE_KEYS)
        members = entry.get("members")
        if isinstance(members, str):
            members = [m.strip() for m in members.split(",")]
        if not isinstance(members, list) or len(members) < 2:
            raise PipelineError(f"{file}: combine[{i}].members must list at least two of the models' labels")
        unknown = [m for m in members if m not in by_label]
        if unknown:
            raise PipelineError(f"{file}: combine[{i}]: member(s) {', '.join(map(str, unknown))} not among the "
                                f"models; labels: {', '.join(by_label)}")
        specs = [by_label[m] for m in members]
        names = [s.model for s in specs]
        if len(set(names)) < len(names) or "combination" in names:
            raise PipelineError(f"{file}: combine[{i}]: members must be different models, not {', '.join(names)}")
        try:
            used = [Covariates.of(**s.covariates(data)) for s in specs]
        except ForecastError as exc:
            raise PipelineError(f"{file}: combine[{i}]: {exc}") from None
        if any(u != used[0] for u in used):
            used = "; ".join(f"{s.label}: {_described(u) or 'none'}" for s, u in zip(specs, used))
            raise PipelineError(f"{file}: combine[{i}]: members must use the same covariates ({used}); combine "
                                "models with the same roles")
        params = {"members": ",".join(names), "how": entry.get("how", "median"),
                  "params": {s.model: s.params for s in specs if s.params}}
        try:
            registry.create("combination", **params)
        except ForecastError as exc:
            raise PipelineError(f"{file}: combine[{i}]: {exc}") from None
        out.append(ModelSpec(label=str(entry.get("name") or f"combination-{i}"), model="combination",
                             params=params, roles=specs[0].roles))
    return out


def select(pipeline: Pipeline, only: str | None) -> list[ModelSpec]:
    """The models named in `only` (labels or model names, comma-separated), or all of them."""
    every = pipeline.models + pipeline.combine
    if not only:
        return every
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [m for m in every if m.label in wanted or m.model in wanted]
    missing = [w for w in wanted if not any(w in (m.label, m.model) for m in every)]
    if missing:
        raise PipelineError(f"{pipeline.file}: --models {', '.join(missing)} not in the pipeline; "
                            f"it has {', '.join(m.label for m in every)}")
    return chosen


def plan(pipeline: Pipeline, models: list[ModelSpec]) -> list[str]:
    """What a run would do, one line per model (for --dry-run)."""
    data = pipeline.data
    origin = f"official split, test {data['test'].name}" if "test" in data else \
        f"{pipeline.folds} fold(s), step {pipeline.step or 'one horizon'}"
    lines = [f"pipeline '{pipeline.name}': {data['path'].name}, horizon {pipeline.horizon or 'default'}, {origin}, "
             f"ranked by {pipeline.metric}"]
    for m in models:
        used = _described(Covariates.of(**m.covariates(data)))
        shown = (f"{m.params['how']} of {m.params['members']}" if m.model == "combination" else m.params or "")
        lines.append(f"  {m.label}: {m.model} {shown}".rstrip() + (f"  covariates: {used}" if used else ""))
    return lines


@dataclass
class PipelineResult:
    run_id: str
    experiment: str
    leaderboard: pd.DataFrame
    failures: dict  # label -> error message


def run_pipeline(path, only: str | None = None, tracking_uri: str | None = None, echo=print) -> PipelineResult:
    """Backtest every model of the pipeline as a child run of one parent run; rank them in a leaderboard."""
    from forecast import api, fits, plots, report, tracking

    pipeline = load_pipeline(path)
    models = select(pipeline, only)
    columns, _ = api.split_options({k: v for k, v in pipeline.data.items() if k not in ROLES})
    loaded: dict = {}

    def load(roles: dict):
        """(data, test) with the covariates of `roles`, loaded once per distinct set of roles."""
        key = repr(sorted(roles.items()))
        if key not in loaded:
            data = api.load(pipeline.data["path"], **columns, **roles)
            test = api.load_test(pipeline.data["test"], data, columns) if "test" in pipeline.data else None
            loaded[key] = data, test
        return loaded[key]

    data, _ = load({k: pipeline.data.get(k) for k in ROLES})
    rows, holdouts, steps, failures = [], {}, {}, {}
    with tracking.parent_run(pipeline.name, run_name=pipeline.name, uri=tracking_uri) as parent, fits.shared():
        parent.log_params({"pipeline": str(pipeline.file), "models": ",".join(m.label for m in models),
                           "metric": pipeline.metric, "folds": pipeline.folds, "step": pipeline.step,
                           **api.data_params(data, pipeline.horizon)})
        parent.log_dataset(data.df, data.path, data.sha256)
        for spec in models:
            echo(f"{spec.label} ({spec.model}) ...")
            try:
                model_data, test = load(spec.covariates(pipeline.data))
                result = api.backtest(pipeline.data["path"], spec.model, pipeline.horizon, folds=pipeline.folds,
                                      step=pipeline.step, refit=pipeline.refit, final_fit=pipeline.refit,
                                      experiment=pipeline.name,
                                      tracking_uri=tracking_uri, run_name=spec.label, parent_run_id=parent.run_id,
                                      data=model_data, test=test, **spec.params)
            except Exception as exc:  # one failing model must not stop the others; its run is already FAILED
                failures[spec.label] = tracking.error_message(exc)
                echo(f"  FAILED: {failures[spec.label]}")
                rows.append({"label": spec.label, "model": spec.model, "status": "FAILED"})
                continue
            holdouts[spec.label], steps[spec.label] = result.forecast, result.error_by_step
            shown = {k: v for k, v in result.metrics.items() if k in SHOWN}
            row = {"label": spec.label, "model": spec.model, "status": "FINISHED", **shown,
                   **{k: v for k, v in result.metrics_std.items() if k.removesuffix("_std") in shown}}
            rows.append({**row, "train_seconds": result.train_seconds, "run_id": result.run_id})
            value = result.metrics.get(pipeline.metric)  # none: no intervals where nothing could calibrate them
            echo(f"  {pipeline.metric} {'none' if value is None else f'{value:.4g}'}  ({result.train_seconds:.1f} s)")
        board = leaderboard(rows, pipeline.metric)
        parent.log_frame(board, "leaderboard.csv")
        table = report.render(report.with_spread(board.drop(columns=["run_id"], errors="ignore")), "markdown")
        parent.log_text(table, "leaderboard.md")
        horizon = f"horizon {pipeline.horizon}" if pipeline.horizon else "the default horizon"
        parent.set_description(f"**{pipeline.name}**: {len(models)} models backtested on `{Path(data.path).name}` "
                               f"({pipeline.folds} fold(s), {horizon}), ranked by {pipeline.metric}.\n\n{table}")
        if holdouts:
            figure = plots.leaderboard_figure(holdouts, data.df, f"{pipeline.name}: holdout forecasts", by_step=steps)
            parent.log_frame(pd.concat([t.assign(label=label) for label, t in steps.items()], ignore_index=True),
                             "error_by_step.csv")
            parent.log_figure(figure, "leaderboard.png")
            plots.close(figure)
            best = board[board["status"] == "FINISHED"].iloc[0]
            parent.log_metrics({f"best_{pipeline.metric}": best[pipeline.metric]})
            parent.set_tags({"best_model": best["label"], "best_run_id": best["run_id"]})
        if failures:
            parent.set_tags({"failed_models": ",".join(failures)})
    return PipelineResult(run_id=parent.run_id, experiment=pipeline.name, leaderboard=board, failures=failures)


def leaderboard(rows: list[dict], metric: str) -> pd.DataFrame:
    """Finished runs ranked by `metric` (then failed ones), with a rank column."""
    board = pd.DataFrame(rows)
    for column in METRICS:
        if column not in board:
            board[column] = float("nan")
    board = board.sort_values(metric, na_position="last", kind="stable").reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board
