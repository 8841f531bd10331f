"""Markdown tables of the runs: the models side by side (mean ± std over seeds), every run.
``mlm`` runs (one per model, nothing random) get one table with their masked-LM scores."""

from __future__ import annotations

import statistics

from wwm_distill.eval.tasks import MLM, SPAN, Task

HEADERS = {
    "accuracy": "Accuracy",
    "em": "EM",
    "f1": "F1",
    "average": "Average",
    "top1": "Top-1 %",
    "top5": "Top-5 %",
    "ce": "CE (nats)",
    "perplexity": "Perplexity",
    "teacher_agreement": "Teacher top-1 agreement %",
    "kl": "KL stored (nats)",
    "kl_bucket": "KL + tail bucket (nats)",
}
DECIMALS = {"ce": 4, "kl": 4, "kl_bucket": 4}  # the rest: 2
MLM_BASE = ("top1", "top5", "ce", "perplexity")
MLM_TEACHER = ("teacher_agreement", "kl", "kl_bucket")
MLM_NOTE = (
    "CE and perplexity on the true labels at the masked positions; KL stored = "
    "Σ_j p_j (log p_j − log q_j) over the cache's stored entries only (teacher tail left "
    "out); KL + tail bucket adds the tail as one merged outcome (a lower bound of the full "
    "KL, ≥ 0)."
)


def metric_names(task: Task, runs: list[dict] = ()) -> tuple[str, ...]:
    if task.family == MLM:
        teacher = any("teacher_agreement" in r["metrics"] for r in runs)
        return MLM_BASE + (MLM_TEACHER if teacher else ())
    return ("em", "f1", "average") if task.family == SPAN else ("accuracy",)


def fmt(name: str, value: float | None) -> str:
    return "–" if value is None else f"{value:.{DECIMALS.get(name, 2)}f}"


def mean_std(values: list[float], decimals: int = 2) -> str:
    """``mean ± sample std`` with two decimals; only the mean for a single value."""
    if len(values) == 1:
        return f"{values[0]:.{decimals}f}"
    return f"{statistics.mean(values):.{decimals}f} ± {statistics.stdev(values):.{decimals}f}"


def scores_line(task: Task, metrics: dict) -> str:
    return ", ".join(f"{k} {fmt(k, v)}" for k, v in metrics.items())


def _table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def summary_table(task: Task, runs: list[dict]) -> str:
    """One row per model, in the order given: every metric as mean ± std over its seeds
    (``mlm``: the one run's scores, '–' where a run had no teacher cache)."""
    names = metric_names(task, runs)
    if task.family == MLM:
        rows = [
            [r["model_name"], f"{r['n_eval']:,}", f"{r['positions']:,}"]
            + [fmt(m, r["metrics"].get(m)) for m in names]
            + [f"{r['time_s']:.1f}"]
            for r in runs
        ]
        header = ["model", "examples", "positions", *(HEADERS[m] for m in names), "s"]
        return _table(header, rows)
    by_model: dict[str, list[dict]] = {}
    for run in runs:
        by_model.setdefault(run["model_name"], []).append(run)
    rows = [
        [model, str(len(rs))]
        + [mean_std([r["metrics"][m] for r in rs], DECIMALS.get(m, 2)) for m in names]
        + [f"{statistics.mean(r['time_s'] for r in rs):.1f}"]
        for model, rs in by_model.items()
    ]
    header = ["model", "seeds", *(HEADERS[m] for m in names), "s / run"]
    return _table(header, rows)


def runs_table(task: Task, runs: list[dict]) -> str:
    """Every run ('' for ``mlm``, whose summary already has one row per run)."""
    if task.family == MLM:
        return ""
    names = metric_names(task, runs)
    rows = [
        [r["model_name"], str(r["seed"])]
        + [fmt(m, r["metrics"][m]) for m in names]
        + [f"{r['train_loss'][0]:.4f} → {r['train_loss'][-1]:.4f}", f"{r['time_s']:.1f}"]
        for r in runs
    ]
    header = ["model", "seed", *(HEADERS[m] for m in names), "train loss (epoch 1 → last)", "s"]
    return _table(header, rows)
