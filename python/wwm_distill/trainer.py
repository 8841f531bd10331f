"""The training loop of ``distill-train``: one readable loop in the manner of nanoGPT.

Batches come from the Rust loader (examples + teacher cache, assembled in background
threads); the student's LM head runs on masked positions only; AdamW with linear warmup and
decay, gradient clipping, accumulation, DDP under torchrun; atomic checkpoints that resume
exactly (same losses at every later step).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from wwm_distill import _core
from wwm_distill.cache import TeacherCache
from wwm_distill.data import Examples
from wwm_distill.distributed import dist_info, maybe_init_distributed, process_device
from wwm_distill.errors import TrainingError
from wwm_distill.model import TOKENIZER_FILES, masked_logits
from wwm_distill.objective import Objective
from wwm_distill.student import build_student

BLOCK = 256  # examples per cache block: shuffling keeps reads block-local


@dataclass
class TrainConfig:
    examples: str
    out: str
    cache: str | None = None  # None: hard-label masked-LM training (baseline, or a teacher)
    student: str | None = None
    init_from: str | None = None
    layers: list[int] | None = None
    num_layers: int | None = None
    config: str | None = None
    batch_size: int = 384
    micro_batch_size: int | None = None
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 20000
    max_steps: int = 1_000_000
    clip: float = 1.0
    alpha_ce: float = Objective.alpha_ce
    alpha_cos: float = Objective.alpha_cos
    alpha_mlm: float | None = None  # default: 0 with a cache, 1 without
    temperature: float = Objective.temperature
    tail: str = Objective.tail
    eval_examples: int = 2000
    eval_every: int = 1000
    save_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    seed: int = 0
    device: str = "cpu"
    dtype: str = "bf16"
    group_by_length: bool = False
    prefetch: int = 4
    loader_threads: int = 2
    progress: bool = True
    stop_at_step: int | None = None
    stop_after_minutes: float | None = None
    dropout: float | None = None

    def objective(self) -> Objective:
        """The seed's CE + cosine from the cache; plain masked LM on the labels without one."""
        if self.cache is None:
            mlm = 1.0 if self.alpha_mlm is None else self.alpha_mlm
            if mlm <= 0:
                raise TrainingError("without --cache the loss is --alpha-mlm > 0 times the MLM CE")
            return Objective(0.0, 0.0, mlm, self.temperature, self.tail)
        mlm = 0.0 if self.alpha_mlm is None else self.alpha_mlm
        return Objective(self.alpha_ce, self.alpha_cos, mlm, self.temperature, self.tail)


# ----------------------------------------------------------------------------- data plan


def split_indices(n: int, n_eval: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed held-out split: depends only on (n, n_eval, seed), never on restarts. At
    most a tenth of the examples is held out."""
    perm = np.random.default_rng([seed, 0xE7A1]).permutation(n)
    n_eval = min(n_eval, n // 10)
    return np.sort(perm[n_eval:]), np.sort(perm[:n_eval])


def epoch_order(
    train: np.ndarray, epoch: int, seed: int, lengths: np.ndarray | None, global_batch: int
) -> np.ndarray:
    """Seeded per-epoch shuffle that keeps cache reads block-local: blocks of consecutive
    examples are shuffled, then examples within groups of 8 blocks. With ``lengths``,
    each group is also sorted by length before batching (length grouping)."""
    rng = np.random.default_rng([seed, epoch])
    blocks = [train[(train // BLOCK) == b] for b in np.unique(train // BLOCK)]
    order = rng.permutation(len(blocks))
    out = []
    for g in range(0, len(order), 8):
        group = np.concatenate([blocks[i] for i in order[g : g + 8]])
        group = group[rng.permutation(group.size)]
        if lengths is not None:
            group = group[np.argsort(-lengths[group], kind="stable")]
            batches = [group[s : s + global_batch] for s in range(0, group.size, global_batch)]
            group = np.concatenate([batches[i] for i in rng.permutation(len(batches))])
        out.append(group)
    return np.concatenate(out) if out else train[:0]


def micro_batch_stream(
    batches: _core.Batches,
    train: np.ndarray,
    cfg: TrainConfig,
    lengths,
    start: int,
    rank: int,
    world: int,
    micro: int,
    accum: int,
):
    """This rank's micro-batches from global step ``start`` on. Step ``s`` always reads the
    same examples (a pure function of seed and step), so a resumed run reads exactly what
    an uninterrupted one would. One Rust loader per epoch assembles them ahead."""
    per_epoch = train.size // cfg.batch_size
    if per_epoch == 0:
        raise TrainingError(
            f"{train.size} training examples: fewer than one batch of {cfg.batch_size}"
        )
    step = start
    while step < cfg.max_steps:
        epoch, k0 = divmod(step, per_epoch)
        order = epoch_order(train, epoch, cfg.seed, lengths, cfg.batch_size)
        k1 = min(per_epoch, k0 + cfg.max_steps - step)
        plan = []
        for k in range(k0, k1):
            batch = order[k * cfg.batch_size : (k + 1) * cfg.batch_size]
            mine = batch[rank * micro * accum : (rank + 1) * micro * accum]
            plan += [mine[a * micro : (a + 1) * micro].astype(np.uint64) for a in range(accum)]
        yield from batches.loader(plan, prefetch=cfg.prefetch, threads=cfg.loader_threads)
        step += k1 - k0


# ----------------------------------------------------------------------------- model bits


def param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def to_torch(batch: dict, device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}


class MaskedLM(torch.nn.Module):
    """A masked LM whose forward runs the LM head at masked positions only (what DDP wraps)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, rows, positions):
        return masked_logits(self.model, input_ids, attention_mask, rows, positions)


def forward_loss(net, b: dict, objective: Objective, autocast) -> dict[str, torch.Tensor]:
    with autocast:
        logits = net(b["input_ids"], b["attention_mask"], b["masked_rows"], b["masked_positions"])
    teacher = [b.get(k) for k in ("teacher_ids", "teacher_logp", "teacher_tail")]
    return objective(logits.float(), *teacher, b["masked_labels"]) | {"logits": logits}


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(run: Path, step: int, model, opt, sched, cfg: TrainConfig) -> None:
    ckpt_dir = run / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        "config": json.dumps(asdict(cfg)),
    }
    path = ckpt_dir / f"step-{step:08d}.pt"
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    for old in sorted(ckpt_dir.glob("step-*.pt"))[: -cfg.keep_checkpoints]:
        old.unlink()


def latest_checkpoint(run: Path) -> Path | None:
    found = sorted((run / "checkpoints").glob("step-*.pt"))
    return found[-1] if found else None


# ----------------------------------------------------------------------------- eval


@torch.no_grad()
def evaluate(
    model,
    batches: _core.Batches,
    eval_idx: np.ndarray,
    objective: Objective,
    device,
    autocast,
    micro: int,
) -> dict:
    model.eval()
    n = hits = agree = 0
    loss_sum = mlm_sum = 0.0
    for s in range(0, eval_idx.size, micro):
        b = to_torch(batches.assemble(eval_idx[s : s + micro].astype(np.uint64)), device)
        out = forward_loss(MaskedLM(model), b, objective, autocast)
        pred = out["logits"].argmax(-1)
        m = pred.numel()
        n += m
        hits += int((pred == b["masked_labels"]).sum())
        if "teacher_ids" in b:
            agree += int((pred == b["teacher_ids"][:, 0]).sum())
        loss_sum += float(out["loss"]) * m
        mlm_sum += float(out["mlm"]) * m
    model.train()
    record = {
        "eval_loss": loss_sum / max(n, 1),
        "eval_mlm_loss": mlm_sum / max(n, 1),
        "eval_mlm_accuracy": hits / max(n, 1),
        "eval_positions": n,
    }
    if objective.uses_teacher:
        record["eval_teacher_top1_agreement"] = agree / max(n, 1)
    return record


# ----------------------------------------------------------------------------- training


def train(cfg: TrainConfig) -> dict:
    from tqdm import tqdm

    maybe_init_distributed(cfg.device)
    rank, world = dist_info()
    device = torch.device(process_device(cfg.device, rank, world))
    if device.type == "cuda" and world > 1:
        torch.cuda.set_device(device)
    run = Path(cfg.out)
    micro = cfg.micro_batch_size or cfg.batch_size // world
    if cfg.batch_size % (micro * world):
        raise TrainingError(
            f"--batch-size {cfg.batch_size} is not a multiple of "
            f"--micro-batch-size {micro} x {world} process(es)"
        )
    accum = cfg.batch_size // (micro * world)

    examples = Examples(cfg.examples)
    objective = cfg.objective()
    if cfg.cache is not None:
        TeacherCache(cfg.cache, examples)  # refuses a cache made from other examples
    batches = _core.Batches(cfg.examples, cfg.cache)
    train_idx, eval_idx = split_indices(len(examples), cfg.eval_examples, cfg.seed)
    lengths = None
    if cfg.group_by_length:
        lengths = examples.lengths()

    torch.manual_seed(cfg.seed)
    model, source = build_student(
        student=cfg.student,
        init_from=cfg.init_from,
        layers=cfg.layers,
        num_layers=cfg.num_layers,
        config=cfg.config,
        examples=examples,
        seed=cfg.seed,
    )
    if cfg.dropout is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = cfg.dropout
        model.config.hidden_dropout_prob = cfg.dropout
        model.config.attention_probs_dropout_prob = cfg.dropout
    model.to(device).train()
    opt = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(0.9, 0.999),
        eps=1e-6,
        fused=device.type == "cuda",
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_steps, cfg.max_steps))
    start = 0
    ckpt = latest_checkpoint(run)
    if ckpt is not None:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        start = state["step"]
    net = MaskedLM(model)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.dtype)
    use_amp = device.type == "cuda" and amp_dtype is not None
    autocast = torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=use_amp)
    scaler = torch.amp.GradScaler(enabled=use_amp and cfg.dtype == "fp16")

    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    metrics = open(run / "metrics.jsonl", "a") if rank == 0 else None  # noqa: SIM115
    tb = None
    if rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(run / "tensorboard")
        except ImportError:
            pass

    def log(record: dict) -> None:
        if metrics is None:
            return
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
        if tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    tb.add_scalar(k, v, record["step"])

    stream = micro_batch_stream(batches, train_idx, cfg, lengths, start, rank, world, micro, accum)
    bar = tqdm(
        total=cfg.max_steps,
        initial=start,
        desc="train",
        disable=not (cfg.progress and rank == 0),
        dynamic_ncols=True,
    )
    t_last, samples = time.monotonic(), 0
    started = t_last
    wait_s = rate = 0.0
    last = {}
    for step in range(start, cfg.max_steps):
        sums: dict[str, float] = {}
        for a in range(accum):
            t = time.monotonic()
            b = to_torch(next(stream), device)
            wait_s += time.monotonic() - t
            sync = a == accum - 1 or world == 1
            ctx = net.no_sync() if (world > 1 and not sync) else contextlib.nullcontext()
            with ctx:
                out = forward_loss(net, b, objective, autocast)
                scaler.scale(out["loss"] / accum).backward()
            for k in ("loss", "ce", "cos", "mlm"):
                if k in out:
                    sums[k] = sums.get(k, 0.0) + float(out[k].detach()) / accum
            samples += b["input_ids"].shape[0] * world
        if not math.isfinite(sums["loss"]):
            good = latest_checkpoint(run)
            raise TrainingError(
                f"loss is {sums['loss']} at step {step + 1}; stopping. The last good "
                f"checkpoint is {good or 'none (no checkpoint written yet)'}; try a lower "
                f"--lr or --dtype fp32."
            )
        scaler.unscale_(opt)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip))
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sched.step()
        done = step + 1
        last = {"step": done, **sums, "lr": sched.get_last_lr()[0], "grad_norm": grad_norm}
        if done % cfg.log_every == 0 or done == cfg.max_steps:
            now = time.monotonic()
            rate = samples / max(now - t_last, 1e-9)
            last["samples_per_s"] = rate
            last["data_wait_s"] = wait_s
            t_last, samples, wait_s = now, 0, 0.0
            log(last)
        bar.set_postfix(
            loss=f"{sums['loss']:.4f}",
            lr=f"{last['lr']:.2e}",
            samples_s=f"{rate:.0f}",
            refresh=False,
        )
        bar.update(1)
        if eval_idx.size and (done % cfg.eval_every == 0 or done == cfg.max_steps) and rank == 0:
            log(
                {
                    "step": done,
                    **evaluate(model, batches, eval_idx, objective, device, autocast, micro),
                }
            )
        stopping = (cfg.stop_at_step is not None and done >= cfg.stop_at_step) or out_of_time(
            cfg, started, world, device
        )
        if done % cfg.save_every == 0 or done == cfg.max_steps or stopping:
            if rank == 0:
                save_checkpoint(run, done, model, opt, sched, cfg)
            if world > 1:
                torch.distributed.barrier()
        if stopping:
            break
    bar.close()
    if rank == 0 and last.get("step") == cfg.max_steps:
        save_student(model, source, run / "student")
    if metrics is not None:
        metrics.close()
    if tb is not None:
        tb.close()
    return last


def out_of_time(cfg: TrainConfig, started: float, world: int, device) -> bool:
    """``--stop-after-minutes`` spent (rank 0's clock decides for every process)."""
    if cfg.stop_after_minutes is None:
        return False
    late = time.monotonic() - started > 60 * cfg.stop_after_minutes
    if world > 1:
        flag = torch.tensor([float(late)], device=device)
        torch.distributed.broadcast(flag, 0)
        late = bool(flag.item())
    return late


def save_student(model, source: Path, out: Path) -> None:
    """The final student as a Hugging Face directory (config, safetensors, tokenizer)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, tmp / name)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
