"""Every run of one task: load the data once, then fine-tune and score each model with each
seed (or, for ``mlm``, score each model once), keep the runs in ``results.json`` (written
after every run, so a rerun skips the finished ones: a run is finished when a stored run
has the same key) and write this call's Markdown tables to ``results-TASK.md`` (several
tasks can share one results directory)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from wwm_distill import _core
from wwm_distill.data import Examples
from wwm_distill.eval import data, report
from wwm_distill.eval.tasks import SPAN, TASKS

RESULTS_JSON = "results.json"


@dataclass(frozen=True)
class Split:
    """A seeded stratified train/test split of one labelled file (``data.stratified_split``)."""

    test_fraction: float = 0.2
    seed: int = 0

    def as_dict(self) -> dict:
        return {"kind": "stratified", "test_fraction": self.test_fraction, "seed": self.seed}

    def describe(self) -> str:
        test = round(100 * self.test_fraction, 2)
        return f"stratified {100 - test:g} / {test:g} (train / test), split seed {self.seed}"


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


def same_run(run: dict, key: dict) -> bool:
    """``run`` was made with the settings ``key`` (fields a run lacks read as None)."""
    return all(run.get(k) == v for k, v in key.items())


def unique(models: list[str | Path]) -> list[str]:
    """Absolute model paths, each once, in the order given; a directory is required."""
    out: list[str] = []
    for m in models:
        path = str(Path(m).resolve())
        if not (Path(path) / "config.json").is_file():
            raise ValueError(f"{m}: not a model directory (no config.json)")
        if path not in out:
            out.append(path)
    return out


def execute(
    task,
    jobs: list[tuple[dict, str, str, Callable[[], dict]]],
    out_dir: str | Path,
    header: str,
    device,
    log: Callable[[str], None] = stderr,
) -> tuple[list[dict], str]:
    """Run every ``(key, model_name, label, work)`` job whose key is not in
    ``out_dir/results.json`` yet (``work()`` returns the result: ``metrics`` and sizes),
    saving after each; write ``results-TASK.md`` (``header`` then the tables) and return
    this call's runs and the summary table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stored, current = load_runs(out), []
    for key, name, label, work in jobs:
        done = next((r for r in stored if same_run(r, key)), None)
        if done is not None:
            log(f"{task.name}: {label}: finished before, skipped")
            current.append({**done, "model_name": name})
            continue
        t0 = time.perf_counter()
        result = work()
        run = {
            **key,
            "model_name": name,
            **result,
            "time_s": round(time.perf_counter() - t0, 2),
            "device": str(device),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        stored.append(run)
        save_runs(out, stored)
        current.append(run)
        log(
            f"{task.name}: {label}: {report.scores_line(task, result['metrics'])} "
            f"({run['time_s']:.0f} s)"
        )
    summary = report.summary_table(task, current)
    runs = report.runs_table(task, current)
    md = f"# distill-eval: {task.name}\n\n{header}\n\n{summary}\n"
    if runs:
        md += f"\n## Runs\n\n{runs}\n"
    (out / f"results-{task.name}.md").write_text(md, encoding="utf-8")
    return current, summary


def run_eval(
    task_name: str,
    train_file: str | Path,
    eval_file: str | Path | None,
    models: list[str | Path],
    seeds: list[int],
    hp,
    out_dir: str | Path,
    device=None,
    progress: bool = True,
    log: Callable[[str], None] = stderr,
    split: Split | None = None,
) -> tuple[list[dict], str]:
    """Fine-tune and score every (model, seed) run that is not in ``out_dir/results.json``
    yet; return this call's runs and its summary table. With ``split`` (and no
    ``eval_file``), ``train_file`` is one labelled file cut into train and test parts."""
    from wwm_distill.eval.finetune import finetune, pick_device

    task = TASKS[task_name]
    models = unique(models)
    train_file = Path(train_file).resolve()
    eval_file = train_file if eval_file is None else Path(eval_file).resolve()
    train, evaluation, labels, full = _load_splits(task, train_file, eval_file, hp, log, split)
    device = pick_device(device)
    names = model_names(models)
    jobs = []
    for model in models:
        for seed in seeds:
            key = {
                "task": task.name,
                "model": model,
                "seed": seed,
                "train_file": str(train_file),
                "eval_file": str(eval_file),
                "split": split.as_dict() if split else None,
                "hparams": hp.as_dict(),
            }

            def work(model=model, seed=seed):
                return finetune(task, model, train, evaluation, hp, seed, labels, device, progress)

            jobs.append((key, names[model], f"{names[model]} seed {seed}", work))
    n_train, n_eval = _count(len(train), full[0]), _count(len(evaluation), full[1])
    if split:
        source = (
            f"data: `{train_file}`, split {split.describe()}: {n_train} train / "
            f"{n_eval} test examples"
        )
    else:
        source = (
            f"train: `{train_file}` ({n_train} examples)  \neval: `{eval_file}` ({n_eval} examples)"
        )
    header = f"{source}  \nhyper-parameters: `{json.dumps(hp.as_dict())}`"
    return execute(task, jobs, out_dir, header, device, log)


def run_mlm(
    examples_dir: str | Path,
    models: list[str | Path],
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
    max_examples: int | None = None,
    batch_size: int = 32,
    device=None,
    progress: bool = True,
    log: Callable[[str], None] = stderr,
) -> tuple[list[dict], str]:
    """Masked-LM scores (``eval.mlm``) of every model not in ``out_dir/results.json`` yet
    with the same examples (and manifest), cache and sample size; one run per model."""
    from wwm_distill.cache import TeacherCache
    from wwm_distill.eval import mlm
    from wwm_distill.eval.finetune import pick_device

    task = TASKS["mlm"]
    models = unique(models)
    examples_dir = Path(examples_dir).resolve()
    examples = Examples(examples_dir)
    cache = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir).resolve()
        cache = TeacherCache(cache_dir, examples)  # refuses a cache of other examples
    if max_examples is not None and max_examples <= 0:
        raise ValueError(f"max_eval_examples must be positive, not {max_examples}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    device = pick_device(device)
    names = model_names(models)
    jobs = []
    cache_sha = None if cache_dir is None else _core.sha256_file(cache_dir / "manifest.json")
    for model in models:
        key = {
            "task": task.name,
            "model": model,
            "examples": str(examples_dir),
            "examples_manifest_sha256": _core.sha256_file(examples_dir / "manifest.json"),
            "cache": None if cache_dir is None else str(cache_dir),
            "cache_manifest_sha256": cache_sha,
            "hparams": {"max_eval_examples": max_examples},
        }

        def work(model=model):
            result = mlm.evaluate(
                model,
                examples_dir,
                cache_dir,
                max_examples=max_examples,
                batch_size=batch_size,
                device=device,
                progress=progress,
            )
            return {**result, "batch_size": batch_size}

        jobs.append((key, names[model], names[model], work))
    n = len(examples) if max_examples is None else min(max_examples, len(examples))
    header = f"examples: `{examples_dir}` ({n:,} of {len(examples):,} examples scored)"
    if cache is not None:
        t = cache.manifest.get("teacher", {})
        mode = cache.manifest.get("mode", {})
        header += (
            f"  \nteacher cache: `{cache_dir}` (teacher `{t.get('name', '?')}`, "
            f"{mode.get('kind', '?')} k={mode.get('k', '?')})"
        )
    header += "  \ndeterministic: one run per model; " + report.MLM_NOTE
    return execute(task, jobs, out_dir, header, device, log)


def _load_splits(task, train_file: Path, eval_file: Path, hp, log, split=None):
    train = data.load(train_file, task)
    if split is not None:
        if task.family == SPAN:
            raise ValueError(
                f"{task.name}: a span task needs separate train and dev files (questions of "
                "one context would land on both sides of a split)"
            )
        train, evaluation = data.stratified_split(train, split.test_fraction, split.seed)
    else:
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
    full = (len(train), len(evaluation))
    train = data.subset(train, hp.max_train_examples)
    evaluation = data.subset(evaluation, hp.max_eval_examples)
    return train, evaluation, labels, full


def _count(used: int, of: int) -> str:
    """``1,000`` or, for a sample, ``1,000 of 3,913``."""
    return f"{used:,}" if used == of else f"{used:,} of {of:,}"
