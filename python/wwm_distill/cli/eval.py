"""``distill-eval``: fine-tune models on a Chinese task with several seeds and compare them.

distill-eval --task TASK (--data DIR | --train FILE --eval FILE) --model DIR [DIR ...]
             [--seeds 3] [--epochs --lr --batch-size --max-seq-length ...] --out RESULTS_DIR
"""

from __future__ import annotations

import argparse
import sys

from wwm_distill.cli import fail
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

EPILOG = """\
defaults              pair / single sentence    span extraction
  --lr                2e-5                      3e-5
  --batch-size        32                        32
  --epochs            3                         2
  --max-seq-length    128                       384
  --warmup-ratio      0.1                       0.1
  --weight-decay      0.01                      0.01
  --doc-stride                                  128 (tokens shared by neighbouring windows)
  --max-answer-length                           30 (tokens)
  --n-best                                      20

tasks: pair lcqmc afqmc cmnli xnli; single tnews chnsenticorp thucnews; span cmrc2018 drcd.
--data DIR finds the splits by name: train.json, dev.tsv, LCQMC_dev.csv, cmrc2018_dev.json,
DRCD_training.json, cnews.val.txt ... (any .json/.jsonl/.tsv/.csv/.txt named *train* or
*training*, *dev*, *val* or *validation*). Formats are detected from the contents.
--max-train-examples / --max-eval-examples take a fixed random sample (the same for every
model and seed). Every run goes to RESULTS_DIR/results.json, this call's tables to
RESULTS_DIR/results-TASK.md; runs already there with the same settings are skipped.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fine-tune and score models on a Chinese task; mean ± std over seeds.",
        epilog=EPILOG,
    )
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--data", help="directory holding the train and dev splits")
    p.add_argument("--train", help="train file (instead of finding it in --data)")
    p.add_argument("--eval", help="file to score on (instead of the dev split in --data)")
    p.add_argument("--model", required=True, nargs="+", help="Hugging Face model directories")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--seeds", type=int, default=3, help="runs per model (seeds 0..N-1)")
    g = p.add_argument_group("fine-tuning (default: the task family's, see below)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--max-seq-length", type=int)
    g.add_argument("--warmup-ratio", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--doc-stride", type=int)
    g.add_argument("--max-answer-length", type=int)
    g.add_argument("--n-best", type=int)
    g.add_argument("--max-train-examples", type=int, help="sample this many train examples")
    g.add_argument("--max-eval-examples", type=int, help="score on this many examples")
    g = p.add_argument_group("run")
    g.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or run lines")
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    a = build_parser().parse_args(argv)
    if not a.data and not (a.train and a.eval):
        fail(PROG, "give --data DIR, or both --train FILE and --eval FILE")
    if a.seeds < 1:
        fail(PROG, "--seeds must be at least 1")
    try:
        from wwm_distill.eval import runner
        from wwm_distill.eval.finetune import defaults

        train = a.train or find_split(a.data, "train")
        evaluation = a.eval or find_split(a.data, "dev")
        hp = defaults(TASKS[a.task], **{k: getattr(a, k) for k in HYPER})
        _, table = runner.run_eval(
            a.task,
            train,
            evaluation,
            a.model,
            list(range(a.seeds)),
            hp,
            a.out,
            device=a.device,
            progress=not a.quiet,
            log=(lambda _m: None) if a.quiet else runner.stderr,
        )
    except (OSError, ValueError) as e:
        fail(PROG, str(e))
    except KeyboardInterrupt:
        fail(PROG, "interrupted; rerun the same command to continue (finished runs are kept)", 130)
    print(table)


if __name__ == "__main__":
    main()
