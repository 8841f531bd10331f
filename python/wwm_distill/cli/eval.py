"""``distill-eval``: fine-tune models on a Chinese task with several seeds and compare them,
or score their masked-LM heads on held-out ``distill-prep`` examples.

distill-eval --task TASK (--data DIR | --data FILE | --train FILE --eval FILE)
             --model DIR [DIR ...] [--seeds 3] [--epochs --lr --batch-size ...] --out RESULTS_DIR
distill-eval --task mlm --examples EX_DIR [--cache TEACHER_DIR] --model DIR [DIR ...]
             [--max-eval-examples N --batch-size B] --out RESULTS_DIR
"""

from __future__ import annotations

import argparse
import sys

from wwm_distill import WwmDistillError
from wwm_distill.cli import defaults_of, fail
from wwm_distill.eval.tasks import TASKS, find_split

PROG = "distill-eval"
HYPER = (
    "epochs",
    "lr",
    "batch_size",
    "max_seq_length",
    "warmup_ratio",
    "weight_decay",
    "doc_stride",
    "max_answer_length",
    "n_best",
    "max_train_examples",
    "max_eval_examples",
)

SEEDS = 3  # runs per model unless --seeds says otherwise
# the defaults table: every setting of Hyper, for both families or span extraction only
TABLE = {
    "lr": None,
    "batch_size": None,
    "epochs": None,
    "max_seq_length": None,
    "warmup_ratio": None,
    "weight_decay": None,
    "doc_stride": "tokens shared by neighbouring windows",
    "max_answer_length": "tokens",
    "n_best": "",
}
SPAN_ONLY = ("doc_stride", "max_answer_length", "n_best")

EPILOG = """\
tasks: pair lcqmc afqmc cmnli xnli; single tnews chnsenticorp thucnews; span cmrc2018 drcd;
mlm (masked-LM scores, no fine-tuning; see below).
--data DIR finds the splits by name: train.json, dev.tsv, LCQMC_dev.csv, cmrc2018_dev.json,
DRCD_training.json, cnews.val.txt ... (any .json/.jsonl/.tsv/.csv/.txt named *train* or
*training*, *dev*, *val* or *validation*). Formats are detected from the contents.
--data FILE (one labelled file, e.g. scripts/corpus.py's thucnews.jsonl of
{"category", "text"} lines) is cut into a seeded stratified train/test split: each label
gives --test-fraction of its examples to the test part (at least one stays in train); the
same split for every model and seed, recorded in results.json and the table (pair and
single-sentence tasks; span tasks need their train and dev files).
--max-train-examples / --max-eval-examples take a fixed random sample (the same for every
model and seed). Every run goes to RESULTS_DIR/results.json, this call's tables to
RESULTS_DIR/results-TASK.md; runs already there with the same settings are skipped.

--task mlm --examples EX_DIR [--cache TEACHER_DIR]: at every masked position of the held-out
examples (a distill-prep output), top-1 / top-5 accuracy, cross entropy and perplexity
(exp CE) on the true labels. With a distill-teacher cache of the same examples also the
top-1 agreement with the teacher (model argmax == the cache's first stored id) and KL over
the stored entries, sum_j p_j (log p_j - log q_j) (p the cache's stored teacher probs, q the
model's softmax; the teacher's tail is left out, so this is not a full KL), plus the KL with
the tail merged into one "rest" outcome (>= 0, a lower bound of the full KL). Nothing is
random, so there is one run per model: --seeds and the fine-tuning settings do not apply.
--max-eval-examples scores a fixed sample of examples, --batch-size sets examples per forward
pass (default {B}). A run is keyed by model, examples (and their manifest), cache and sample
size. Refused: a model whose vocabulary differs from the examples', a model with fewer
positions than the examples are long, a cache made from other examples.
"""


def number(value) -> str:
    """2e-5 (not 2e-05), 0.1, 128."""
    return f"{value:g}".replace("e-0", "e-")


def defaults_table() -> str:
    """The fine-tuning defaults of both task families (``eval.finetune``) as the help lists
    them."""
    from wwm_distill.eval.finetune import CLASSIFICATION_DEFAULTS, SPAN_DEFAULTS

    rows = [f"{'defaults':<22}{'pair / single sentence':<26}span extraction"]
    for name, note in TABLE.items():
        pair = "" if name in SPAN_ONLY else number(getattr(CLASSIFICATION_DEFAULTS, name))
        span = number(getattr(SPAN_DEFAULTS, name)) + (f" ({note})" if note else "")
        rows.append(f"  {'--' + name.replace('_', '-'):<20}{pair:<26}{span}")
    return "\n".join(rows) + "\n\n"


def build_parser() -> argparse.ArgumentParser:
    from wwm_distill.eval.runner import Split, run_mlm

    mlm_batch_size = defaults_of(run_mlm)["batch_size"]
    p = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fine-tune and score models on a Chinese task (mean ± std over seeds), "
        "or score their masked-LM heads on held-out distill-prep examples (--task mlm).",
        epilog=defaults_table() + EPILOG.replace("{B}", str(mlm_batch_size)),
    )
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument(
        "--data", help="directory holding the train and dev splits, or one file to split"
    )
    p.add_argument("--train", help="train file (instead of finding it in --data)")
    p.add_argument("--eval", help="file to score on (instead of the dev split in --data)")
    p.add_argument("--model", required=True, nargs="+", help="Hugging Face model directories")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument(
        "--seeds", type=int, help=f"runs per model (seeds 0..N-1; default {SEEDS}; not for mlm)"
    )
    g = p.add_argument_group("one labelled file (--data FILE)")
    g.add_argument(
        "--test-fraction",
        type=float,
        help=f"share of each label held out for testing ({Split.test_fraction})",
    )
    g.add_argument("--split-seed", type=int, help=f"seed of the stratified split ({Split.seed})")
    g = p.add_argument_group("--task mlm")
    g.add_argument("--examples", help="held-out distill-prep output directory")
    g.add_argument("--cache", help="distill-teacher output made from those examples")
    g = p.add_argument_group("fine-tuning (default: the task family's, see below)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument(
        "--batch-size", type=int, help=f"(mlm: examples per forward pass, {mlm_batch_size})"
    )
    g.add_argument("--max-seq-length", type=int)
    g.add_argument("--warmup-ratio", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--doc-stride", type=int)
    g.add_argument("--max-answer-length", type=int)
    g.add_argument("--n-best", type=int)
    g.add_argument("--max-train-examples", type=int, help="sample this many train examples")
    g.add_argument("--max-eval-examples", type=int, help="score on this many examples (also mlm)")
    g = p.add_argument_group("run")
    g.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or run lines")
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    a = build_parser().parse_args(argv)
    try:
        table = _mlm(a) if a.task == "mlm" else _finetune(a)
    except (OSError, ValueError, WwmDistillError) as e:
        fail(PROG, str(e))
    except KeyboardInterrupt:
        fail(PROG, "interrupted; rerun the same command to continue (finished runs are kept)", 130)
    print(table)


def _log(a):
    from wwm_distill.eval import runner

    return (lambda _m: None) if a.quiet else runner.stderr


def _finetune(a) -> str:
    from pathlib import Path

    for name in ("examples", "cache"):
        if getattr(a, name):
            fail(PROG, f"--{name} is for --task mlm; fine-tuning tasks read --data or --train")
    if a.data and not Path(a.data).exists():
        fail(PROG, f"{a.data}: no such file or directory")
    single = a.data is not None and Path(a.data).is_file()
    if not single and (a.test_fraction is not None or a.split_seed is not None):
        fail(PROG, "--test-fraction / --split-seed split one labelled file: give --data FILE")
    if not a.data and not (a.train and a.eval):
        fail(PROG, "give --data DIR, --data FILE, or both --train FILE and --eval FILE")
    if a.data and (a.train or a.eval):
        fail(PROG, "give either --data or --train/--eval, not both")
    seeds = SEEDS if a.seeds is None else a.seeds
    if seeds < 1:
        fail(PROG, "--seeds must be at least 1")
    from wwm_distill.eval import runner
    from wwm_distill.eval.finetune import defaults

    hp = defaults(TASKS[a.task], **{k: getattr(a, k) for k in HYPER})
    split = None
    if single:
        split = runner.Split(
            **{
                k: v
                for k, v in (("test_fraction", a.test_fraction), ("seed", a.split_seed))
                if v is not None
            }
        )
        if not 0.0 < split.test_fraction < 1.0:
            fail(PROG, f"--test-fraction must be between 0 and 1, not {split.test_fraction}")
        train, evaluation = a.data, None
    elif a.data:
        train, evaluation = find_split(a.data, "train"), find_split(a.data, "dev")
    else:
        train, evaluation = a.train, a.eval
    _, table = runner.run_eval(
        a.task,
        train,
        evaluation,
        a.model,
        list(range(seeds)),
        hp,
        a.out,
        device=a.device,
        progress=not a.quiet,
        log=_log(a),
        split=split,
    )
    return table


def _mlm(a) -> str:
    if not a.examples:
        fail(PROG, "--task mlm needs --examples DIR (a distill-prep output)")
    given = [
        "--" + k.replace("_", "-")
        for k in ("data", "train", "eval", "seeds", "test_fraction", "split_seed", *HYPER)
        if getattr(a, k) is not None and k not in ("batch_size", "max_eval_examples")
    ]
    if given:
        fail(
            PROG,
            f"{', '.join(given)}: not for --task mlm (no fine-tuning, one deterministic run "
            "per model)",
        )
    from wwm_distill.eval import runner

    _, table = runner.run_mlm(
        a.examples,
        a.model,
        a.out,
        cache_dir=a.cache,
        max_examples=a.max_eval_examples,
        **({} if a.batch_size is None else {"batch_size": a.batch_size}),
        device=a.device,
        progress=not a.quiet,
        log=_log(a),
    )
    return table


if __name__ == "__main__":
    main()
