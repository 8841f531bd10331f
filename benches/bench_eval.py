"""Downstream scores of real small models on LCQMC and CMRC2018 (CPU-sized subsets).

Runs ``distill-eval`` on each model given plus a named baseline built in the same run: a
randomly initialised BERT with the first model's exact configuration (seed 0), so the table
shows what pre-training (or distillation) adds over the same network knowing nothing. The
default model is the bench's small masked LM (``.cache/bench/teacher-small``, made by
``benches/bench_cache.py``: 2 layers, hidden 128, trained with masked-LM on People's Daily).

Usage::

    python benches/bench_eval.py --data ../shared/data [--model DIR ...] [--seeds 3]
        [--write-results]

``--data`` holds ``lcqmc/`` (LCQMC_dev.csv, LCQMC_test.csv: LCQMC has no train split
there, so models are fine-tuned on dev and scored on test) and ``cmrc2018/`` (train and dev
SQuAD-format JSON). Results go to ``.cache/eval/bench/<task>/`` (reruns skip finished runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "RESULTS.md"


def random_twin(model: Path, out: Path) -> Path:
    """A randomly initialised BertForMaskedLM with ``model``'s config and vocabulary."""
    import torch
    import transformers

    if (out / "config.json").is_file():
        return out
    torch.manual_seed(0)
    cfg = transformers.AutoConfig.from_pretrained(model, local_files_only=True)
    transformers.AutoModelForMaskedLM.from_config(cfg).save_pretrained(out)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (model / name).is_file():
            shutil.copy(model / name, out / name)
    return out


def max_positions(model: Path) -> int:
    return json.loads((model / "config.json").read_text())["max_position_embeddings"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder with lcqmc/ and cmrc2018/")
    p.add_argument("--model", nargs="+", default=[str(ROOT / ".cache/bench/teacher-small")])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4, help="small models want more than 2e-5")
    p.add_argument("--lcqmc-train", type=int, default=8802, help="LCQMC dev pairs to train on")
    p.add_argument("--lcqmc-eval", type=int, default=4000, help="LCQMC test pairs to score")
    p.add_argument("--cmrc-train", type=int, default=3000, help="CMRC2018 train questions")
    p.add_argument("--cmrc-eval", type=int, default=1000, help="CMRC2018 dev questions")
    p.add_argument("--out", default=str(ROOT / ".cache/eval/bench"))
    p.add_argument("--write-results", action="store_true")
    a = p.parse_args()

    data, out = Path(a.data), Path(a.out)
    models = [Path(m).resolve() for m in a.model]
    for m in models:
        if not (m / "config.json").is_file():
            sys.exit(f"{m}: no model there (the default is made by benches/bench_cache.py)")
    baseline = random_twin(models[0], out / "models" / f"{models[0].name}-random-init").resolve()
    all_models = [*models, baseline]
    length = min(128, *(max_positions(m) for m in all_models))
    exe = Path(sys.executable).parent / "distill-eval"
    common = ["--seeds", str(a.seeds), "--lr", str(a.lr), "--device", "cpu", "--quiet"]
    common += ["--max-seq-length", str(length)]
    jobs = {
        "lcqmc": [
            "--train",
            str(data / "lcqmc" / "LCQMC_dev.csv"),
            "--eval",
            str(data / "lcqmc" / "LCQMC_test.csv"),
            "--max-train-examples",
            str(a.lcqmc_train),
            "--max-eval-examples",
            str(a.lcqmc_eval),
        ],
        "cmrc2018": [
            "--data",
            str(data / "cmrc2018"),
            "--doc-stride",
            str(length // 4),
            "--max-train-examples",
            str(a.cmrc_train),
            "--max-eval-examples",
            str(a.cmrc_eval),
        ],
    }
    load_start = os.getloadavg()[0]
    sections, commands = [], []
    for task, args in jobs.items():
        cmd = [str(exe), "--task", task, *args, "--model", *map(str, all_models)]
        cmd += [*common, "--out", str(out / task)]
        commands.append(" ".join(shlex.quote(x) for x in ["distill-eval", *cmd[1:]]))
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        print(f"{task}: {time.perf_counter() - t0:.0f} s", flush=True)
        runs = json.loads((out / task / "results.json").read_text())["runs"]
        key = "accuracy" if task == "lcqmc" else "average"
        by_model = {
            m.name: [
                r["metrics"][key]
                for r in runs
                if r["model"] == str(m) and r["hparams"]["lr"] == a.lr and r["seed"] < a.seeds
            ]
            for m in all_models
        }
        base = statistics.mean(by_model[baseline.name])
        md = (out / task / f"results-{task}.md").read_text()
        ratio = "\n".join(
            f"- {name}: {key} {statistics.mean(v):.2f} = {statistics.mean(v) / base:.3f}x "
            f"the random-init baseline"
            for name, v in by_model.items()
            if name != baseline.name
        )
        body = md.split("\n", 1)[1].strip().replace("\n## Runs\n", "\n#### Every run\n")
        sections.append(f"### {task}\n\n{body}\n\n{ratio}\n")
        print(md)
        print(ratio)
    load_end = os.getloadavg()[0]
    if a.write_results:
        import torch
        import transformers

        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        argv = " ".join(shlex.quote(x) for x in sys.argv[1:])

        def anon(text: str) -> str:
            for d in (str(data.resolve()), str(data)):
                text = text.replace(d, "DATA")
            return text.replace(str(ROOT) + "/", "")

        body = anon("\n".join(sections))
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(
                f"\n## distill-eval on CPU: real small models vs their random-init twin, {stamp}"
                f"\n\n`python benches/bench_eval.py {argv}`\n\n"
                f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                f"torch {torch.__version__}, transformers {transformers.__version__}; "
                f"1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the "
                f"end. DATA = the `--data` folder. The commands it ran:\n\n```sh\n"
                + "\n".join(anon(c) for c in commands)
                + f"\n```\n\n{body}"
            )


if __name__ == "__main__":
    main()
