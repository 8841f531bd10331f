"""``distill-teacher``: run the teacher once; cache its outputs at every masked position.

distill-teacher --model MODEL_DIR --examples EX_DIR --out DIR [--topk K | --top-p P
                --topk K | --sample N] [--batch-size B] [--dtype fp32|bf16|fp16]
                [--device cpu|cuda]
distill-teacher fit-head --model DIR --examples EX_DIR --out NEW_DIR
"""

from __future__ import annotations

import argparse
import sys

from wwm_distill import WwmDistillError
from wwm_distill.cli import defaults_of, fail

PROG = "distill-teacher"


def build_parser() -> argparse.ArgumentParser:
    """``run_teacher``'s options, with the defaults it and ``Mode`` declare."""
    from wwm_distill import _core
    from wwm_distill.model import DTYPES
    from wwm_distill.teacher import Mode, run_teacher

    run = defaults_of(run_teacher)
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Cache a masked-LM teacher's outputs (top-k / top-p / sampled) at every "
        "masked position of the examples. `distill-teacher fit-head` trains an untrained MLM "
        "head with the encoder frozen.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="Hugging Face masked-LM directory")
    p.add_argument("--examples", required=True, help="distill-prep output directory")
    p.add_argument("--out", required=True, help="cache directory")
    g = p.add_argument_group("what to keep per position")
    g.add_argument("--topk", type=int, default=Mode.k, help="most entries kept per position")
    g.add_argument(
        "--top-p",
        type=float,
        default=Mode.top_p,
        help="keep the shortest prefix holding this mass (at most --topk)",
    )
    g.add_argument(
        "--sample",
        type=int,
        default=Mode.sample_n,
        metavar="N",
        help="random-sampling KD: N draws per position, stored with counts",
    )
    g.add_argument(
        "--logprob-step",
        type=float,
        default=Mode.step,
        help=f"log-prob quantisation step in nats, at most {_core.CACHE_MAX_STEP:g} (a stored "
        "log-prob is off by at most step/2; default %(default)g)",
    )
    g = p.add_argument_group("run")
    g.add_argument("--batch-size", type=int, default=run["batch_size"])
    g.add_argument(
        "--dtype",
        choices=list(DTYPES),
        default=run["dtype"],
        help="teacher weights on GPU (on CPU always fp32)",
    )
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    g.add_argument(
        "--chunk-examples",
        type=int,
        default=run["chunk_examples"],
        help="examples per hand-over to the background writer",
    )
    g.add_argument(
        "--check-examples",
        type=int,
        default=run["check_examples"],
        help="held-out examples for the MLM-head check",
    )
    g.add_argument(
        "--skip-check", action="store_true", help="cache even if the MLM head looks untrained"
    )
    g.add_argument("--seed", type=int, default=run["seed"])
    g.add_argument(
        "--format-version",
        type=int,
        choices=(2, 3),
        default=run["format_version"],
        help="teacher-cache format (default: the newest, 3, the smallest); 2 is ~10-20 %% "
        "larger and decodes ~2x faster, for training runs short of CPU",
    )
    g.add_argument("--quiet", action="store_true")
    return p


def fit_head_parser() -> argparse.ArgumentParser:
    """``fit_head``'s options, with the defaults it declares."""
    from wwm_distill.head import fit_head

    fit = defaults_of(fit_head)
    p = argparse.ArgumentParser(
        prog=f"{PROG} fit-head",
        description="Train only the MLM head (transform + bias; decoder tied to the input "
        "embeddings) with the encoder frozen, and save a complete model directory.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True)
    p.add_argument("--examples", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=fit["steps"])
    p.add_argument("--lr", type=float, default=fit["lr"])
    p.add_argument("--batch-size", type=int, default=fit["batch_size"])
    p.add_argument("--device", default=None)
    p.add_argument("--check-examples", type=int, default=fit["check_examples"])
    p.add_argument("--seed", type=int, default=fit["seed"])
    p.add_argument("--quiet", action="store_true")
    return p


def format_report(m: dict) -> str:
    r, c = m["report"], m["check"]
    return "\n".join(
        [
            f"positions           {r['positions']:,}",
            f"entries / position  {r['mean_entries_per_position']:.2f} ({m['mode']['kind']})",
            f"bytes / position    {r['bytes_per_position']:.1f} ({r['bytes'] / 1e6:.2f} MB)",
            f"mean tail mass      {r['mean_tail_mass']:.4f}",
            f"teacher top-1 acc.  {100 * r['teacher_top1_accuracy']:.2f} % (check: "
            f"{100 * c['accuracy']:.2f} % vs most-frequent "
            f"{100 * c['most_frequent_token_accuracy']:.2f} %)",
            f"time                {r['elapsed_s']:.1f} s",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        from wwm_distill import head, teacher
        from wwm_distill.model import default_device

        if argv[:1] == ["fit-head"]:
            a = fit_head_parser().parse_args(argv[1:])
            r = head.fit_head(
                a.model,
                a.examples,
                a.out,
                steps=a.steps,
                lr=a.lr,
                batch_size=a.batch_size,
                device=a.device or default_device(),
                seed=a.seed,
                check_examples=a.check_examples,
                progress=not a.quiet,
            )
            c = r["check"]
            print(
                f"saved {r['out']}: head check {'passed' if c['passed'] else 'FAILED'} "
                f"({100 * c['accuracy']:.2f} % vs most-frequent "
                f"{100 * c['most_frequent_token_accuracy']:.2f} %), final loss "
                f"{r['final_loss']:.3f}"
            )
            if not c["passed"]:
                raise SystemExit(1)
            return
        a = build_parser().parse_args(argv)
        mode = teacher.mode_from_options(a.topk, a.top_p, a.sample, a.logprob_step)
        m = teacher.run_teacher(
            a.model,
            a.examples,
            a.out,
            mode=mode,
            batch_size=a.batch_size,
            dtype=a.dtype,
            device=a.device or default_device(),
            skip_check=a.skip_check,
            check_examples=a.check_examples,
            chunk_examples=a.chunk_examples,
            seed=a.seed,
            format_version=a.format_version,
            progress=not a.quiet,
        )
        if m and not a.quiet:
            print(format_report(m))
    except (WwmDistillError, OSError) as e:
        fail(PROG, str(e))
    except KeyboardInterrupt:
        fail(PROG, "interrupted; rerun the same command to resume", 130)


if __name__ == "__main__":
    main()
