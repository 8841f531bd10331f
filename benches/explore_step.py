"""How a teacher cache's size depends on the log-prob quantisation step (exploration).

A cache stores each kept log-prob as ``q = round(-log p / step)``. The finer the step, the
more distinct values, the fewer entries tied in value, and format 3 codes the rank of a
tied entry as a small increase but the rank of any other entry in full: the step trades
bytes for fidelity. This measures that trade on a real teacher's exact outputs: for each
step, the top-k cache's bytes per position (this build's writer, the file's own bytes) and
what quantising costs, as KL(p_exact || p_decoded) minus the same with exact stored values
(bench_cache.py's definitions; the truncation to k entries is the part that does not
depend on the step).

    python benches/explore_step.py --model-dir DIR | --checkpoint PT --config JSON \
        --examples EXAMPLES_DIR [--n-examples 3000] [--steps 0.019,0.04,...] [--write-results]

``--checkpoint`` takes a ``distill-train`` checkpoint (e.g. ``scripts/quality.py``'s
teacher, ``teacher/checkpoints/step-N.pt``) with the model's ``config.in.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cache  # noqa: E402
from wwm_distill import _core, teacher  # noqa: E402
from wwm_distill.data import Examples  # noqa: E402

DEFAULT_STEPS = "0.019,0.025,0.033,0.04,0.05,0.067,0.1"


def load_model(args):
    import transformers

    if args.model_dir:
        from wwm_distill.model import load_masked_lm

        return load_masked_lm(args.model_dir, "cpu", "fp32"), str(args.model_dir)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    weights = state["model"]
    cfg = json.loads(Path(args.config).read_text())
    vocab = weights["bert.embeddings.word_embeddings.weight"].shape[0]
    model = transformers.BertForMaskedLM(transformers.BertConfig(**cfg, vocab_size=vocab))
    model.load_state_dict(weights)
    return model.eval(), f"{args.checkpoint} (step {state['step']})"


def tied_share(logp: np.ndarray, k: np.ndarray, step: float) -> float:
    """Share of entries j >= 2 stored with the same value as entry j - 1."""
    q = np.round(-logp / step)
    j = np.arange(logp.shape[1])[None, :]
    valid = (j >= 2) & (j < k[:, None])
    same = np.zeros_like(valid)
    same[:, 1:] = q[:, 1:] == q[:, :-1]
    return float((same & valid).sum() / max(1, valid.sum()))


def stored_error(logp: torch.Tensor, ids: np.ndarray, got: np.ndarray, k: np.ndarray) -> float:
    """Mean |log p_got - log p_exact| over the stored entries."""
    width = ids.shape[1]
    valid = np.arange(width)[None, :] < k[:, None]
    exact = logp.gather(1, torch.from_numpy(np.where(valid, ids, 0).astype(np.int64))).numpy()
    return float(np.abs(np.where(valid, got - exact, 0.0)).sum() / valid.sum())


def bf16_row(model, examples, n: int, batch: int, logp: torch.Tensor, k: int) -> dict:
    """The same outputs from the model in bfloat16 (as `distill-teacher --dtype bf16` runs
    it on a GPU): the error of its top-k log-probs, and its KL from the fp32 outputs."""
    model16 = copy.deepcopy(model).to(torch.bfloat16)  # `to` would round `model` in place
    lp16, _, _ = bench_cache.full_logp(model16, examples, np.arange(n, dtype=np.uint64), batch)
    vals, ids = logp.topk(k, dim=-1)
    got = lp16.gather(1, ids)
    err = float((got - vals).abs().mean())
    kl = 0.0
    for s in range(0, len(logp), 1024):
        a, b = logp[s : s + 1024].double(), lp16[s : s + 1024].double()
        kl += float((a.exp() * (a - b)).sum())
    return {"err": err, "kl": kl / len(logp)}


def measure(logp: torch.Tensor, ppe: np.ndarray, k: int, steps: list[float], scratch: Path):
    rows = []
    for step in steps:
        mode = teacher.Mode("topk", k=k, step=step)
        arrays = bench_cache.select_all(logp, mode)
        path = scratch / f"step-{step:g}.tkc"
        info, secs = bench_cache.write_cache(path, mode, ppe, arrays)
        r = _core.CacheReader(str(path))
        ids, q_logp, q_tail, kk = r.gather(np.arange(r.n_examples, dtype=np.uint64))
        div = bench_cache.divergence(logp, ids, q_logp, q_tail, kk)
        rows.append(
            {
                "step": step,
                "err": stored_error(logp, ids, q_logp, kk),
                "bytes": info["bytes"] / len(logp),
                "tied": tied_share(arrays["logp"], arrays["k"], step),
                "kl": div.kl,
                "kl_trunc": div.kl_trunc,
                "encode_s": secs,
            }
        )
        bench_cache.log(
            f"step {step:g}: {rows[-1]['bytes']:.1f} B/position, "
            f"KL - KL trunc {div.kl - div.kl_trunc:+.2e}"
        )
        path.unlink()
    return rows


def render(
    args, source: str, stats: dict, n_pos: int, k: int, rows: list[dict], bf16: dict | None
) -> str:
    cmd = "python benches/explore_step.py " + " ".join(sys.argv[1:])
    base = next((r for r in rows if abs(r["step"] - teacher.Mode.step) < 1e-9), rows[0])
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: teacher cache bytes vs "
        "log-prob step (`explore_step.py`)",
        "",
        f"`{cmd}`",
        "",
        f"Teacher: {source}; {n_pos:,} masked positions of the first {args.n_examples:,} "
        f"examples of `{args.examples}`; exact outputs: mean entropy "
        f"{stats['entropy']:.2f} nats, top-1 probability {stats['top1']:.3f}, top-{k} mass "
        f"{stats['top128']:.3f}. Top-k {k}, format 3, this build's writer.",
        "",
        f"| step (nats) | max error | mean error | bytes/pos | / step {base['step']:g} | "
        "entries tied with the one before | KL nats | KL − KL trunc (quantising) | "
        "quantising / truncation |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        q = r["kl"] - r["kl_trunc"]
        lines.append(
            f"| {r['step']:g} | {r['step'] / 2:.4f} | {r['err']:.4f} | {r['bytes']:.1f} | "
            f"{r['bytes'] / base['bytes']:.3f} | {r['tied']:.2f} | {r['kl']:.4f} | "
            f"{q:+.1e} | {q / r['kl_trunc']:.1e} |"
        )
    if bf16:
        lines += [
            "",
            "For scale, the same teacher run in bfloat16 (as `distill-teacher --dtype bf16` "
            f"runs on a GPU; here on the CPU) instead of fp32: mean error of its top-{k} "
            f"log-probs **{bf16['err']:.4f}** nats, KL(p_fp32 || p_bf16) over the whole "
            f"vocabulary **{bf16['kl']:.1e}** nats.",
        ]
    lines += [
        "",
        "Max / mean error: of a stored log-prob (at most step / 2; mean |decoded − exact| "
        "over the stored entries). KL as in bench_cache.py: mean over "
        "positions of KL(p_exact || p_decoded), p_decoded = decoded stored probabilities + "
        "stored tail spread uniformly over the other ids, normalised; KL trunc: the same "
        "with exact stored values, so KL − KL trunc is what the step costs.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", type=Path, help="a teacher model directory")
    src.add_argument("--checkpoint", type=Path, help="a distill-train checkpoint (.pt)")
    ap.add_argument("--config", type=Path, help="with --checkpoint: its config.in.json")
    ap.add_argument("--examples", type=Path, required=True, help="a distill-prep directory")
    ap.add_argument("--n-examples", type=int, default=3000)
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--steps", default=DEFAULT_STEPS, help="comma-separated, in nats")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 comparison")
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args(argv)
    if args.checkpoint and not args.config:
        ap.error("--checkpoint needs --config")
    torch.manual_seed(0)
    model, source = load_model(args)
    examples = Examples(str(args.examples))
    n = min(args.n_examples, len(examples))
    args.n_examples = n
    logp, ppe, secs = bench_cache.full_logp(
        model, examples, np.arange(n, dtype=np.uint64), args.batch_size
    )
    bench_cache.log(f"{len(logp):,} positions, forward {secs:.1f} s")
    stats = bench_cache.distribution_stats(logp)
    steps = [float(s) for s in args.steps.split(",")]
    with tempfile.TemporaryDirectory() as d:
        rows = measure(logp, ppe, args.k, steps, Path(d))
    bf16 = None
    if not args.no_bf16:
        bf16 = bf16_row(model, examples, n, args.batch_size, logp, args.k)
        bench_cache.log(f"bf16: mean top-{args.k} error {bf16['err']:.4f}, KL {bf16['kl']:.1e}")
    text = render(args, source, stats, len(logp), args.k, rows, bf16)
    print(text)
    if args.write_results:
        with open(Path(__file__).resolve().parent / "RESULTS.md", "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
