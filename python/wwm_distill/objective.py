"""The distillation objective (DESIGN.md): soft cross entropy + cosine (+ optional hard MLM).

For each masked position with stored entries ``(id_j, p_j)`` and student log-probs
``s = log_softmax(z / T)`` over the whole vocabulary:

- ``ce = -Σ_j w_j · s[id_j]`` with ``w_j = p_j`` (``tail="drop"``, the seed recipe),
  ``p_j / Σp`` (``"renorm"``), or ``p_j`` plus ``-tail · log(1 - Σ_j exp s[id_j])``
  (``"bucket"``); in ``sample`` caches ``p_j = count_j / N`` (the reader already gives
  ``log(count_j / N)``) and the tail is 0.
- ``cos = 1 - cos(p[ids], exp(s)[ids])`` on probabilities, as the seed.
- ``mlm`` = hard-label cross entropy on the student's logits (T = 1).
- ``loss = α_ce·ce + α_cos·cos + α_mlm·mlm``, averaged over masked positions.

With the defaults (α_ce = α_cos = 1, α_mlm = 0, T = 1, tail drop) this is exactly the
seed's loss. Without a teacher (α_ce = α_cos = 0, α_mlm > 0) it is plain masked-LM
training on the labels: the hard-label baseline, or a teacher trained from scratch.
The temperature softens the student only: the cache holds the teacher at T = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

TAIL_MODES = ("drop", "renorm", "bucket")


@dataclass(frozen=True)
class Objective:
    alpha_ce: float = 1.0
    alpha_cos: float = 1.0
    alpha_mlm: float = 0.0
    temperature: float = 1.0
    tail: str = "drop"

    def __post_init__(self):
        if self.tail not in TAIL_MODES:
            raise ValueError(f"tail must be one of {TAIL_MODES}, not {self.tail!r}")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")

    @property
    def uses_teacher(self) -> bool:
        return bool(self.alpha_ce or self.alpha_cos)

    def __call__(self, logits, teacher_ids=None, teacher_logp=None, teacher_tail=None, labels=None):
        """``logits [N, V]`` of the student at masked positions; teacher ``ids`` / ``logp``
        ``[N, k]`` (−inf padding), ``tail [N]`` (None without a cache: hard labels only);
        ``labels [N]`` for the MLM term. Returns a dict of scalar tensors: loss, and those of
        ce, cos, mlm that could be computed."""
        out = {}
        loss = logits.new_zeros((), dtype=torch.float32)
        if teacher_ids is not None:
            s = torch.log_softmax(logits.float() / self.temperature, dim=-1)
            valid = torch.isfinite(teacher_logp)
            p = torch.where(valid, teacher_logp.exp(), torch.zeros_like(teacher_logp))
            s_ids = s.gather(1, teacher_ids).masked_fill(~valid, 0.0)
            if self.tail == "renorm":
                w = p / p.sum(1, keepdim=True).clamp_min(1e-12)
            else:
                w = p
            ce = -(w * s_ids).sum(1)
            q = s_ids.exp().masked_fill(~valid, 0.0)
            if self.tail == "bucket":
                rest = (1.0 - q.sum(1)).clamp_min(1e-12)
                ce = ce - teacher_tail.float() * rest.log()
            cos = 1.0 - F.cosine_similarity(p, q, dim=1, eps=1e-12)
            out = {"ce": ce.mean(), "cos": cos.mean()}
            loss = self.alpha_ce * out["ce"] + self.alpha_cos * out["cos"]
        elif self.uses_teacher:
            raise ValueError("alpha_ce / alpha_cos > 0 need a teacher cache")
        if labels is not None:
            out["mlm"] = F.cross_entropy(logits.float(), labels)
            if self.alpha_mlm:
                loss = loss + self.alpha_mlm * out["mlm"]
        elif self.alpha_mlm:
            raise ValueError("alpha_mlm > 0 needs the masked labels")
        out["loss"] = loss
        return out
