"""``distill-train``: the student learns from the cached teacher (soft CE + cosine), or,
without ``--cache``, from the masked labels alone (the hard-label baseline, or a teacher
trained from scratch with ``--config``).

distill-train --examples EX_DIR [--cache TEACHER_DIR] --out RUN_DIR
              (--student MODEL_DIR | --init-from MODEL_DIR [--layers 0,1,2 |
               --num-layers 3] | --config JSON) [options]
"""

from __future__ import annotations

import argparse
import sys

from wwm_distill import WwmDistillError
from wwm_distill.cli import fail

PROG = "distill-train"


def build_parser() -> argparse.ArgumentParser:
    """The options of ``TrainConfig``, with its defaults (declared there only)."""
    from wwm_distill.objective import TAIL_MODES
    from wwm_distill.trainer import TrainConfig as C

    p = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Distil a student from a teacher cache, or train a masked LM on the hard "
        "labels (no --cache). Rerunning with the same --out resumes from the last checkpoint "
        "exactly.",
    )
    p.add_argument("--examples", required=True, help="distill-prep output")
    p.add_argument(
        "--cache",
        help="distill-teacher output; without it the loss is the hard-label masked-LM cross "
        "entropy (CE and cosine terms off)",
    )
    p.add_argument("--out", required=True, help="run directory")
    g = p.add_argument_group("student (one of)")
    g.add_argument("--student", help="Hugging Face masked-LM directory to start from")
    g.add_argument("--init-from", help="bigger model to take layers from")
    g.add_argument("--layers", help="with --init-from: layer indices, e.g. 0,5,11")
    g.add_argument("--num-layers", type=int, help="with --init-from: evenly spread layers")
    g.add_argument(
        "--config",
        help="config.json of a fresh, randomly initialised model (vocab_size and the "
        "tokenizer default to the examples')",
    )
    g = p.add_argument_group("objective")
    g.add_argument("--alpha-ce", type=float, default=C.alpha_ce)
    g.add_argument("--alpha-cos", type=float, default=C.alpha_cos)
    g.add_argument(
        "--alpha-mlm",
        type=float,
        default=C.alpha_mlm,
        help="weight of the hard-label MLM cross entropy (default: 0 with --cache, 1 without)",
    )
    g.add_argument("--temperature", type=float, default=C.temperature)
    g.add_argument("--tail", choices=TAIL_MODES, default=C.tail)
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--batch-size",
        type=int,
        default=C.batch_size,
        help="global batch = micro-batch x accumulation x processes",
    )
    g.add_argument("--micro-batch-size", type=int, default=C.micro_batch_size)
    g.add_argument("--lr", type=float, default=C.lr)
    g.add_argument("--weight-decay", type=float, default=C.weight_decay)
    g.add_argument("--warmup-steps", type=int, default=C.warmup_steps)
    g.add_argument("--max-steps", type=int, default=C.max_steps)
    g.add_argument("--clip", type=float, default=C.clip)
    g.add_argument(
        "--dtype",
        choices=["bf16", "fp16", "fp32"],
        default=C.dtype,
        help="autocast dtype on GPU (CPU always trains in fp32)",
    )
    g.add_argument("--group-by-length", action="store_true", default=C.group_by_length)
    g.add_argument(
        "--dropout",
        type=float,
        default=C.dropout,
        help="override the student's dropout probabilities",
    )
    g = p.add_argument_group("run")
    g.add_argument(
        "--eval-examples", type=int, default=C.eval_examples, help="fixed held-out split"
    )
    g.add_argument("--eval-every", type=int, default=C.eval_every)
    g.add_argument("--save-every", type=int, default=C.save_every)
    g.add_argument("--keep-checkpoints", type=int, default=C.keep_checkpoints)
    g.add_argument("--log-every", type=int, default=C.log_every)
    g.add_argument("--seed", type=int, default=C.seed)
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    g.add_argument("--prefetch", type=int, default=C.prefetch)
    g.add_argument("--loader-threads", type=int, default=C.loader_threads)
    g.add_argument(
        "--stop-at-step",
        type=int,
        default=C.stop_at_step,
        help="checkpoint and stop after this step (rerun to continue)",
    )
    g.add_argument(
        "--stop-after-minutes",
        type=float,
        default=C.stop_after_minutes,
        help="checkpoint and stop once this much time has passed (rerun to continue)",
    )
    g.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    a = build_parser().parse_args(argv)
    try:
        from wwm_distill.model import default_device
        from wwm_distill.trainer import TrainConfig, train

        options = vars(a).copy()
        options["layers"] = [int(x) for x in a.layers.split(",")] if a.layers else None
        options["device"] = a.device or default_device()
        options["progress"] = not options.pop("quiet")
        last = train(TrainConfig(**options))
        if last and not a.quiet:
            where = (
                f"student saved to {a.out}/student"
                if last["step"] == a.max_steps
                else f"checkpoint in {a.out}/checkpoints; rerun to continue"
            )
            print(f"step {last['step']}: loss {last['loss']:.4f}; {where}")
    except (WwmDistillError, OSError, ValueError) as e:
        fail(PROG, str(e))
    except KeyboardInterrupt:
        fail(PROG, "interrupted; rerun the same command to resume from the last checkpoint", 130)


if __name__ == "__main__":
    main()
