"""GPU measurements for the teacher and training stages (run on a machine with CUDA).

1. Teacher pass, BERT-large-size teacher (24 layers, hidden 1024) at sequence length 512
   with the recipe's ≤ 20 masked positions: encoder + LM head at masked positions only vs
   the full-sequence head (``model(...).logits`` then gather). Time per batch.
2. ``run_teacher`` end to end (top-k 128, bf16) on real examples: positions/s and the time
   the GPU loop waited for the Rust writer (target ≤ 5 % of the forward time).
3. Student training step, BERT-base size (12 layers, hidden 768) at length 512 with 20
   masked positions: samples/s with the LM head at masked positions only vs over every
   position, same objective, bf16 autocast, AdamW.
4. ``distill-train`` end to end from the cache of (2): samples/s and time waiting for data.

Random weights: these are speed measurements (compression is measured by bench_cache.py on
a trained teacher). Usage::

    python benches/bench_gpu.py --vocab VOCAB --corpus CORPUS.txt [--out DIR] [--small]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import wwm_distill
from common import bert  # benches/common.py
from wwm_distill import teacher
from wwm_distill.data import Examples
from wwm_distill.model import masked_logits, to_device_batch
from wwm_distill.objective import Objective
from wwm_distill.trainer import TrainConfig, train


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` (CUDA-synchronised)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def save(model, path: Path, vocab: Path) -> Path:
    model.save_pretrained(path)
    (path / "vocab.txt").write_bytes(vocab.read_bytes())
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", default=None, help="write results.json here")
    p.add_argument("--small", action="store_true", help="tiny sizes (to test the script)")
    p.add_argument("--device", default="cuda")
    a = p.parse_args()
    dev = a.device
    small = a.small
    seq = 128 if small else 512
    work = Path(tempfile.mkdtemp(prefix="wwm-gpu-"))
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"
    results: dict = {"device": name, "torch": torch.__version__, "seq_len": seq}

    t = time.perf_counter()
    m = wwm_distill.prepare(
        [a.corpus],
        work / "ex",
        a.vocab,
        progress=False,
        max_seq_length=seq,
        doc_stride=seq // 2,
        dupe_factor=1,
    )
    results["prep"] = {"examples": m["examples"], "s": time.perf_counter() - t}
    ex = Examples(work / "ex")
    vocab = m["vocab"]["size"]
    print(json.dumps(results), flush=True)

    # 1. teacher: masked-only head vs full-sequence head
    tl, th, tn = (2, 128, 2) if small else (24, 1024, 16)
    big = bert(vocab, tl, th, tn, 512).to(dev, torch.bfloat16 if dev == "cuda" else None).eval()
    idx = np.arange(32)
    b = to_device_batch(ex, idx, dev)

    @torch.inference_mode()
    def masked():
        logits = masked_logits(
            big, b["input_ids"], b["attention_mask"], b["masked_rows"], b["masked_positions"]
        )
        return torch.log_softmax(logits.float(), -1).topk(128, -1)

    @torch.inference_mode()
    def full():
        logits = big(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        logits = logits[b["masked_rows"], b["masked_positions"]]
        return torch.log_softmax(logits.float(), -1).topk(128, -1)

    tm, tf = timed(masked, 10), timed(full, 10)
    results["teacher_head"] = {
        "batch": 32,
        "positions": int(b["masked_rows"].numel()),
        "masked_head_ms": 1000 * tm,
        "full_head_ms": 1000 * tf,
        "speedup": tf / tm,
    }
    print(json.dumps(results["teacher_head"]), flush=True)

    # 2. run_teacher end to end (bf16, top-k 128)
    tdir = save(big.float(), work / "teacher", Path(a.vocab))
    big = None  # free the GPU memory
    t = time.perf_counter()
    man = teacher.run_teacher(
        tdir,
        work / "ex",
        work / "cache",
        mode=teacher.Mode("topk", k=128),
        batch_size=64,
        dtype="bf16" if dev == "cuda" else "fp32",
        device=dev,
        skip_check=True,
        progress=False,
    )
    r = man["report"]
    results["run_teacher"] = {
        "positions": r["positions"],
        "wall_s": time.perf_counter() - t,
        "positions_per_s": r["positions"] / r["elapsed_s"],
        "forward_s": r["forward_s"],
        "wait_for_writer_s": r["wait_for_writer_s"],
        "writer_overhead": r["wait_for_writer_s"] / max(r["forward_s"], 1e-9),
        "bytes_per_position": r["bytes_per_position"],
    }
    print(json.dumps(results["run_teacher"]), flush=True)

    # 3. student step: masked-only head vs head over every position
    sl, sh, sn = (2, 128, 2) if small else (12, 768, 12)
    student = bert(vocab, sl, sh, sn, 512).to(dev).train()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-5, fused=dev == "cuda")
    obj = Objective()
    bs = 32
    rows = torch.arange(bs, device=dev).repeat_interleave(20)
    pos = torch.randint(1, seq - 1, (bs * 20,), device=dev)
    ids = torch.randint(1000, vocab, (bs, seq), device=dev)
    mask = torch.ones_like(ids)
    t_logp, t_ids = torch.log_softmax(torch.randn(bs * 20, vocab, device=dev), -1).topk(128, -1)
    tail = 1 - t_logp.exp().sum(1)

    def step(masked_only: bool):
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            if masked_only:
                logits = masked_logits(student, ids, mask, rows, pos)
            else:
                logits = student(input_ids=ids, attention_mask=mask).logits[rows, pos]
        loss = obj(logits.float(), t_ids, t_logp, tail)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sm = timed(lambda: step(True), 10)
    sf = timed(lambda: step(False), 10)
    results["student_step"] = {
        "batch": bs,
        "masked_positions_per_example": 20,
        "masked_head_samples_per_s": bs / sm,
        "full_head_samples_per_s": bs / sf,
        "speedup": sf / sm,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None,
    }
    print(json.dumps(results["student_step"]), flush=True)
    student = opt = None  # free the GPU memory

    # 4. distill-train end to end from the cache
    sdir = save(bert(vocab, sl, sh, sn, 512), work / "student", Path(a.vocab))
    t = time.perf_counter()
    last = train(
        TrainConfig(
            examples=str(work / "ex"),
            cache=str(work / "cache"),
            out=str(work / "run"),
            student=str(sdir),
            batch_size=64,
            micro_batch_size=64,
            max_steps=30,
            warmup_steps=3,
            eval_examples=64,
            eval_every=1000,
            save_every=1000,
            log_every=10,
            device=dev,
            progress=False,
        )
    )
    lines = [json.loads(x) for x in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    steady = [x for x in lines if "samples_per_s" in x][1:]
    results["distill_train"] = {
        "steps": last["step"],
        "wall_s": time.perf_counter() - t,
        "samples_per_s_steady": statistics.mean(x["samples_per_s"] for x in steady),
        "data_wait_s_per_10_steps": statistics.mean(x["data_wait_s"] for x in steady),
    }
    print(json.dumps(results["distill_train"]), flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "gpu_results.json").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
