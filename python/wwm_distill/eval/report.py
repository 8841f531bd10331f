"""Markdown tables of the runs: the models side by side (mean ± std over seeds), every run."""

from __future__ import annotations

import statistics

from wwm_distill.eval.tasks import SPAN, Task

HEADERS = {"accuracy": "Accuracy", "em": "EM", "f1": "F1", "average": "Average"}


def metric_names(task: Task) -> tuple[str, ...]:
    return ("em", "f1", "average") if task.family == SPAN else ("accuracy",)


def mean_std(values: list[float]) -> str:
    """``mean ± sample std`` with two decimals; only the mean for a single value."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def summary_table(task: Task, runs: list[dict]) -> str:
    """One row per model, in the order given: every metric as mean ± std over its seeds."""
    names = metric_names(task)
    by_model: dict[str, list[dict]] = {}
    for run in runs:
        by_model.setdefault(run["model_name"], []).append(run)
    rows = [
        [model, str(len(rs))]
        + [mean_std([r["metrics"][m] for r in rs]) for m in names]
        + [f"{statistics.mean(r['time_s'] for r in rs):.1f}"]
        for model, rs in by_model.items()
    ]
    header = ["model", "seeds", *(HEADERS[m] for m in names), "s / run"]
    return _table(header, rows)


def runs_table(task: Task, runs: list[dict]) -> str:
    names = metric_names(task)
    rows = [
        [r["model_name"], str(r["seed"])]
        + [f"{r['metrics'][m]:.2f}" for m in names]
        + [f"{r['train_loss'][0]:.4f} → {r['train_loss'][-1]:.4f}", f"{r['time_s']:.1f}"]
        for r in runs
    ]
    header = ["model", "seed", *(HEADERS[m] for m in names), "train loss (epoch 1 → last)", "s"]
    return _table(header, rows)
