"""Every (model, seed) run of one task: load the splits once, fine-tune and score each
model with each seed, keep the runs in ``results.json`` (written after every run, so a
rerun skips the finished ones) and write this call's Markdown tables to
``results-TASK.md`` (several tasks can share one results directory)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from wwm_distill.eval import data, report
from wwm_distill.eval.tasks import SPAN, TASKS

RESULTS_JSON = "results.json"
KEY = ("task", "model", "seed", "train_file", "eval_file", "hparams")


def stderr(message: str) -> None:
    print(message, file=sys.stderr)


def model_names(models: list[str]) -> dict[str, str]:
    """Directory names for the table; the paths themselves where two names are the same."""
    names = [Path(m).name or str(m) for m in models]
    return {m: (n if names.count(n) == 1 else str(m)) for m, n in zip(models, names)}


def load_runs(out_dir: Path) -> list[dict]:
    path = out_dir / RESULTS_JSON
    if not path.is_file():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))["runs"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a distill-eval results file ({e})") from None


def save_runs(out_dir: Path, runs: list[dict]) -> None:
    tmp = out_dir / (RESULTS_JSON + ".tmp")
    tmp.write_text(json.dumps({"runs": runs}, ensure_ascii=False, indent=2) + "\n", "utf-8")
    os.replace(tmp, out_dir / RESULTS_JSON)


def run_eval(
    task_name: str,
    train_file: str | Path,
    eval_file: str | Path,
    models: list[str | Path],
    seeds: list[int],
    hp,
    out_dir: str | Path,
    device=None,
    progress: bool = True,
    log: Callable[[str], None] = stderr,
) -> tuple[list[dict], str]:
    """Run what is not in ``out_dir/results.json`` yet; return this call's runs and its
    summary table."""
    from wwm_distill.eval.finetune import finetune, pick_device

    task = TASKS[task_name]
    models = [str(Path(m).resolve()) for m in models]
    for m in models:
        if not (Path(m) / "config.json").is_file():
            raise ValueError(f"{m}: not a model directory (no config.json)")
    train_file, eval_file = Path(train_file).resolve(), Path(eval_file).resolve()
    train, evaluation, labels = _load_splits(task, train_file, eval_file, hp, log)
    device = pick_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stored, names, current = load_runs(out), model_names(models), []
    for model in models:
        for seed in seeds:
            key = {
                "task": task.name,
                "model": model,
                "seed": seed,
                "train_file": str(train_file),
                "eval_file": str(eval_file),
                "hparams": hp.as_dict(),
            }
            done = next((r for r in stored if all(r.get(k) == key[k] for k in KEY)), None)
            if done is not None:
                log(f"{task.name}: {names[model]} seed {seed}: finished before, skipped")
                current.append({**done, "model_name": names[model]})
                continue
            t0 = time.perf_counter()
            result = finetune(task, model, train, evaluation, hp, seed, labels, device, progress)
            run = {
                **key,
                "model_name": names[model],
                **result,
                "time_s": round(time.perf_counter() - t0, 2),
                "device": str(device),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            stored.append(run)
            save_runs(out, stored)
            current.append(run)
            scores = ", ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items())
            log(f"{task.name}: {names[model]} seed {seed}: {scores} ({run['time_s']:.0f} s)")
    summary = report.summary_table(task, current)
    (out / f"results-{task.name}.md").write_text(
        f"# distill-eval: {task.name}\n\ntrain: `{train_file}` ({len(train)} examples)  \n"
        f"eval: `{eval_file}` ({len(evaluation)} examples)  \n"
        f"hyper-parameters: `{json.dumps(hp.as_dict())}`\n\n{summary}\n\n## Runs\n\n"
        f"{report.runs_table(task, current)}\n",
        encoding="utf-8",
    )
    return current, summary


def _load_splits(task, train_file: Path, eval_file: Path, hp, log):
    train = data.load(train_file, task)
    evaluation = data.load(eval_file, task)
    labels: tuple[str, ...] = ()
    if task.family == SPAN:
        shifted = sum(ex.shifted for ex in train)
        missing = sum(ex.answer_start < 0 for ex in train)
        if shifted or missing:
            log(
                f"{train_file.name}: {shifted} answers found near an off answer_start, "
                f"{missing} not in their context (left out of training)"
            )
    else:
        labels = data.labels_of(task, train)
        data.check_labels(eval_file, evaluation, labels)
        if len(labels) < 2:
            raise ValueError(f"{train_file}: one label only ({labels[0]}); nothing to learn")
    train = data.subset(train, hp.max_train_examples)
    evaluation = data.subset(evaluation, hp.max_eval_examples)
    return train, evaluation, labels
