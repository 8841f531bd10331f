"""How small could a top-k cache get? Alternative block codings measured on a real cache.

Ids were most of a format-1 ``.tkc`` file (bench_cache: 156.5 of 195.7 B/position at
k=128). This reads a cache shard (any format: the reader decodes both) and re-encodes its
blocks of ``--block-examples`` examples in Python, each alternative as whole block
payloads (k, tail, ids, values) compressed with zstd like the writer does, so the bytes
per position are comparable with the file's:

* format 1: ids as u16 byte planes in probability order, values as varint deltas;
* rank remap: ids replaced by their frequency rank (table from the first N examples, or
  from all of them, stored once per file and counted here), byte planes, order kept;
* rank remap with a byte code instead of planes: one byte per entry (ranks below 128 as
  themselves, else 128 + rank's high part) plus a stream of low bytes;
* ids sorted per position, gaps as byte planes, plus the permutation back to probability
  order (u8) so that the order is restored;
* the chosen layout at other zstd levels, and with ids and values in two zstd frames.

It also prints the order-0 entropy of the ids and of the ranks (the floor of any coder
without context). Exploration, not a format: nothing here is used by the package; the
decode speed of the chosen coding is measured by bench_cache.py.

``--entropy`` (format 3's choice) prints instead, for the first ``--examples`` examples
(rank table of the first ``--table-examples``, 1,024 as run_teacher's first push): the
empirical conditional entropies of the ranks and the values (bytes per position: the
floor of a coder with those contexts, tables not counted), how ties in value are spread,
and whole-block sizes of: format 2's coding (rank planes + value varints, a zstd frame
per part, level 6) with and without entries of equal value sorted by rank ("canonical"),
the byte code, higher zstd levels, zstd on the ranks with the tied entries' rank increases
("tie gaps"), and static per-block entropy coders (12-bit frequencies, tables counted at
1.5 bytes per symbol) with contexts: none, the entry's slot bucket, slot bucket and the
previous entry's token; on original, canonical, and canonical + tie-gap ranks. Values are
always entropy-coded by slot bucket in those rows; k and tails are counted as 3.6 B/pos.

    python benches/explore_id_coding.py CACHE_DIR_OR_TKC [--examples 1000]
    python benches/explore_id_coding.py CACHE_DIR_OR_TKC --entropy [--examples 6000]
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path

import numpy as np
import zstandard
from wwm_distill import _core


def planes(a: np.ndarray, width: int = 2) -> bytes:
    a = np.asarray(a, np.uint32).ravel()
    return b"".join(((a >> (8 * i)) & 0xFF).astype(np.uint8).tobytes() for i in range(width))


def varints(v: np.ndarray) -> bytes:
    """LEB128 of non-negative ints, in order (vectorised)."""
    v = np.asarray(v, np.uint64).ravel()
    n_bytes = np.ones(v.size, np.int64)
    for b in range(1, 5):
        n_bytes += v >= (1 << (7 * b))
    out = np.zeros(int(n_bytes.sum()), np.uint8)
    start = np.concatenate([[0], np.cumsum(n_bytes)[:-1]])
    for b in range(5):
        has = n_bytes > b
        byte = (v[has] >> np.uint64(7 * b)) & np.uint64(0x7F)
        more = n_bytes[has] > b + 1
        out[start[has] + b] = byte.astype(np.uint8) | (more.astype(np.uint8) << 7)
    return out.tobytes()


def byte_code(r: np.ndarray, c: int = 128) -> bytes:
    """Ranks < c: one byte; else the byte c + (r - c) >> 8 and a low byte in a second
    stream (ranks < c + (256 - c) * 256)."""
    r = np.asarray(r, np.int64).ravel()
    if r.max(initial=0) >= c + (256 - c) * 256:
        raise ValueError("rank too large for the byte code")
    big = r >= c
    s = np.where(big, c + ((r - c) >> 8), r).astype(np.uint8)
    return s.tobytes() + ((r[big] - c) & 0xFF).astype(np.uint8).tobytes()


def rank_of(ids: np.ndarray, k: np.ndarray, min_count: int = 1) -> tuple[np.ndarray, int]:
    """id -> frequency rank over the valid entries of ``ids``: ids seen at least
    ``min_count`` times by decreasing count (ties by id), then all others by id; and the
    number of ids in the table."""
    valid = np.arange(ids.shape[1])[None, :] < k[:, None]
    freq = np.bincount(ids[valid].ravel(), minlength=65536).astype(np.int64)
    freq[freq < min_count] = 0
    order = np.lexsort((np.arange(freq.size), -freq))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank, int((freq > 0).sum())


def entropy_bytes(x: np.ndarray) -> float:
    _, c = np.unique(x, return_counts=True)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum() * x.size / 8)


# ----------------------------------------------------------- format 3: entropy coding


def load(path: str, n_examples: int):
    r = _core.CacheReader(path)
    n = min(r.n_examples, n_examples)
    ex = np.arange(n, dtype=np.uint64)
    ppe = r.positions_of(ex).astype(np.int64)
    ids, logp, tail, k = r.gather(ex)
    if r.mode == "sample":
        q = np.where(np.isfinite(logp), np.round(np.exp(logp) * r.sample_n), 0).astype(np.int64)
    else:
        q = np.where(np.isfinite(logp), np.round(-logp / r.step), 0).astype(np.int64)
    return r, ppe, ids.astype(np.int64), q, tail, k.astype(np.int64)


def rank_table(ids, k, n_pos):
    w = ids.shape[1]
    valid = np.arange(w)[None, :] < k[:n_pos, None]
    freq = np.bincount(ids[:n_pos][valid], minlength=65536).astype(np.int64)
    order = np.lexsort((np.arange(freq.size), -freq))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank, int((freq > 0).sum())


def canon(ranks, q, k, keep_first=True, sample=False):
    """Sort entries by rank within runs of equal q (from slot 1 if keep_first)."""
    P, W = ranks.shape
    j = np.arange(W)[None, :]
    valid = j < k[:, None]
    # key: group id = (q, position) ; sort by (group, rank)
    big = np.iinfo(np.int64).max // 4
    qq = np.where(valid, q if not sample else -q, big)
    if keep_first:
        qq = qq.copy()
        qq[:, 0] = -big  # own group
    rr = np.where(valid, ranks, big)
    order = np.lexsort((rr, qq), axis=1) if False else None
    # lexsort per row: do it via a combined key
    key = qq * (1 << 24) + np.minimum(rr, (1 << 24) - 1)
    order = np.argsort(key, axis=1, kind="stable")
    return np.take_along_axis(ranks, order, 1), np.take_along_axis(q, order, 1)


def H(sym, ctx=None):
    """Empirical conditional entropy in bytes (sum over all symbols)."""
    sym = np.asarray(sym).ravel()
    if ctx is None:
        ctx = np.zeros_like(sym)
    ctx = np.asarray(ctx).ravel()
    _, s = np.unique(sym, return_inverse=True)
    _, c = np.unique(ctx, return_inverse=True)
    joint = c.astype(np.int64) * (s.max() + 1) + s
    _, jc = np.unique(joint, return_counts=True)
    _, cc = np.unique(c, return_counts=True)
    return float((-(jc * np.log2(jc)).sum() + (cc * np.log2(cc)).sum()) / 8)


def tokens(r, direct=32, mant=2):
    """token, extra bits count, extra value."""
    r = np.asarray(r, np.int64)
    small = r < direct
    e = np.floor(np.log2(np.maximum(r, 1))).astype(np.int64)
    e0 = int(np.log2(direct))
    m = (r >> np.maximum(e - mant, 0)) & ((1 << mant) - 1)
    tok = np.where(small, r, direct + (e - e0) * (1 << mant) + m)
    nbits = np.where(small, 0, np.maximum(e - mant, 0))
    return tok, nbits


def slot_bucket(W, P):
    j = np.arange(W)
    b = np.where(j == 0, 0, np.floor(np.log2(np.maximum(j, 1))).astype(np.int64) + 1)
    return np.broadcast_to(b[None, :], (P, W))


def static_cost(sym, ctx, blocks_of, precision=12, table_bytes_per_sym=1.5):
    """rANS with a static table per (block, context): bits with frequencies quantised to
    2**precision (min 1) + table cost estimate; bytes."""
    sym = np.asarray(sym).ravel()
    ctx = np.asarray(ctx).ravel()
    blk = np.asarray(blocks_of).ravel()
    total = 0.0
    nsym = int(sym.max()) + 1
    key = (blk.astype(np.int64) * (int(ctx.max()) + 1) + ctx) * nsym + sym
    u, cnt = np.unique(key, return_counts=True)
    g = u // nsym
    # per group totals
    gu, ginv = np.unique(g, return_inverse=True)
    gtot = np.bincount(ginv, weights=cnt)
    # quantised freq
    f = np.maximum(1, np.round(cnt / gtot[ginv] * (1 << precision)))
    bits = -(cnt * np.log2(f / (1 << precision))).sum()
    total = bits / 8 + len(u) * table_bytes_per_sym + len(gu) * 2
    return total


def entropy_main(a) -> None:
    path = a.cache if a.cache.endswith(".tkc") else sorted(glob.glob(f"{a.cache}/teacher-*.tkc"))[0]
    r, ppe, ids, q, tail, k = load(path, a.examples)
    sample = r.mode == "sample"
    P, W = ids.shape
    n = len(ppe)
    pos_end = np.cumsum(ppe)
    pt = int(pos_end[min(a.table_examples, n) - 1])
    rank, n_tab = rank_table(ids, k, pt)
    valid = np.arange(W)[None, :] < k[:, None]
    R = np.where(valid, rank[ids], 0)
    ex_of_pos = np.repeat(np.arange(n), ppe)
    blk_pos = ex_of_pos // a.block_examples
    blk = np.broadcast_to(blk_pos[:, None], (P, W))
    print(
        f"{path}: {n} examples, {P} positions, mode {r.mode}, mean k {k.mean():.1f}, "
        f"table {n_tab} ids, file {__import__('os').path.getsize(path) / r.n_positions:.1f} B/pos"
    )

    def dq_of(qv):
        d = np.diff(np.concatenate([np.zeros((P, 1), np.int64), qv], 1), axis=1)
        if sample:
            d = -d
            d[:, 0] = qv[:, 0]
        else:
            d[:, 0] = qv[:, 0]
        return d

    def zstd_cost(Rm, qv, level=6, code="planes"):
        z = zstandard.ZstdCompressor(level=level, write_checksum=True)
        d = dq_of(qv)
        size = 0
        for b in range(blk_pos.max() + 1):
            sel_p = blk_pos == b
            sel = valid[sel_p]
            head = k[sel_p].astype(np.uint16).tobytes() + tail[sel_p].astype(np.float32).tobytes()
            rr = Rm[sel_p][sel]
            if code == "planes":
                idparts = [planes(rr)[: rr.size], planes(rr)[rr.size :]]
            else:
                c = int(code)
                big = rr >= c
                s = np.where(big, c + ((rr - c) >> 8), rr).astype(np.uint8)
                idparts = [s.tobytes(), ((rr[big] - c) & 0xFF).astype(np.uint8).tobytes()]
            parts = [head, *idparts, varints(d[sel_p][sel])]
            size += sum(len(z.compress(x)) for x in parts if x)
        return size / P

    def ec_cost(Rm, qv, ctx_mode, tie_gap=False, vctx=True):
        d = dq_of(qv)
        sb = slot_bucket(W, P)
        tok, nb = tokens(Rm)
        if tie_gap:
            # after canonical sort: a tied entry (d == 0, slot >= 2) codes rank gap to prev
            prev = np.concatenate([np.zeros((P, 1), np.int64), Rm[:, :-1]], 1)
            tied = (d == 0) & (np.arange(W)[None, :] >= 2)
            g = np.where(tied, Rm - prev - 1, Rm)
            tok, nb = tokens(g)
        if ctx_mode == "none":
            ctx = np.zeros_like(tok)
        elif ctx_mode == "slot":
            ctx = sb
        elif ctx_mode == "slot+prev":
            ptok = np.concatenate([np.zeros((P, 1), np.int64), np.minimum(tok[:, :-1], 40) // 8], 1)
            ctx = sb * 8 + ptok
        if tie_gap:
            ctx = ctx * 2 + tied
        ids_b = static_cost(tok[valid], ctx[valid], blk[valid]) + nb[valid].sum() / 8
        vt, vnb = tokens(d, 64, 2)
        vc = sb if vctx else np.zeros_like(sb)
        val_b = static_cost(vt[valid], vc[valid], blk[valid]) + vnb[valid].sum() / 8
        return ids_b / P, val_b / P

    Rc, qc = canon(R, q, k, sample=sample)
    print("ids order-0 entropy (ranks):", round(H(R[valid]) / P, 1))
    sb = slot_bucket(W, P)
    print("H(rank | slot bucket):", round(H(R[valid], sb[valid]) / P, 1))
    tok, nb = tokens(R)
    print(
        "H(token) + extra:",
        round((H(tok[valid]) + nb[valid].sum() / 8) / P, 1),
        " H(token|slot)+extra:",
        round((H(tok[valid], sb[valid]) + nb[valid].sum() / 8) / P, 1),
    )
    d = dq_of(q)
    print(
        "values: H(delta)",
        round(H(d[valid]) / P, 1),
        " H(delta|slot)",
        round(H(d[valid], sb[valid]) / P, 1),
    )
    tokc, nbc = tokens(Rc)
    print(
        "canonical: H(token|slot)+extra:",
        round((H(tokc[valid], sb[valid]) + nbc[valid].sum() / 8) / P, 1),
    )
    print(
        f"tie share (delta 0, slot>=1): {((d == 0) & valid)[:, 1:].sum() / valid[:, 1:].sum():.3f}"
    )
    rows = []
    rows.append(("zstd6 planes (v2)", zstd_cost(R, q)))
    rows.append(("zstd6 planes canon", zstd_cost(Rc, qc)))
    rows.append(("zstd6 bytecode64 canon", zstd_cost(Rc, qc, code=64)))
    rows.append(("zstd9 bytecode64 canon", zstd_cost(Rc, qc, 9, code=64)))
    rows.append(("zstd12 planes canon", zstd_cost(Rc, qc, 12)))
    rows.append(("zstd19 planes canon", zstd_cost(Rc, qc, 19)))
    for name, (Rm, qv, tg) in {
        "orig": (R, q, False),
        "canon": (Rc, qc, False),
        "canon+tiegap": (Rc, qc, True),
    }.items():
        for cm in ("none", "slot", "slot+prev"):
            i_b, v_b = ec_cost(Rm, qv, cm, tg)
            rows.append(
                (
                    f"rANS static/block {name} ctx={cm}: ids {i_b:.1f} values {v_b:.1f}",
                    i_b + v_b + 3.6,
                )
            )
    for name, b in rows:
        print(f"| {name} | {b:.1f} |")


def tie_gap_zstd(path, n_examples, levels=(6,)):
    r, ppe, ids, q, tail, k = load(path, n_examples)
    sample = r.mode == "sample"
    P, W = ids.shape
    n = len(ppe)
    pos_end = np.cumsum(ppe)
    pt = int(pos_end[min(1024, n) - 1])
    rank, _ = rank_table(ids, k, pt)
    valid = np.arange(W)[None, :] < k[:, None]
    R = np.where(valid, rank[ids], 0)
    Rc, qc = canon(R, q, k, sample=sample)
    d = np.abs(np.diff(np.concatenate([np.zeros((P, 1), np.int64), qc], 1), axis=1))
    d[:, 0] = qc[:, 0]
    prev = np.concatenate([np.zeros((P, 1), np.int64), Rc[:, :-1]], 1)
    tied = (d == 0) & (np.arange(W)[None, :] >= 2)
    G = np.where(tied, Rc - prev, Rc)
    ex_of_pos = np.repeat(np.arange(n), ppe)
    blk_pos = ex_of_pos // 256
    out = {}
    for level in levels:
        z = zstandard.ZstdCompressor(level=level)
        for name, M in (("R", R), ("canon", Rc), ("tiegap", G)):
            for code in ("planes", "byte64"):
                b = 0
                for bl in range(blk_pos.max() + 1):
                    s = blk_pos == bl
                    rr = M[s][valid[s]]
                    if code == "planes":
                        pl = planes(rr)
                        parts = [pl[: rr.size], pl[rr.size :]]
                    else:
                        big = rr >= 64
                        sb = np.where(big, 64 + ((rr - 64) >> 8), rr).astype(np.uint8)
                        parts = [sb.tobytes(), ((rr[big] - 64) & 0xFF).astype(np.uint8).tobytes()]
                    b += sum(len(z.compress(x)) for x in parts if x)
                out[(level, name, code)] = b / P
                print(f"zstd{level} {name} {code}: ids {b / P:.1f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cache", help="a teacher cache directory or .tkc (top-k or top-p, 2-byte ids)")
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--block-examples", type=int, default=256)
    p.add_argument("--table-examples", type=int, default=None, help="examples the table sees "
                   "(default 256; 1024 with --entropy)")  # fmt: skip
    p.add_argument("--entropy", action="store_true", help="format 3's analysis (see above)")
    a = p.parse_args()
    if a.entropy:
        a.table_examples = a.table_examples or 1024
        entropy_main(a)
        tie_gap_zstd(a.cache if a.cache.endswith(".tkc") else
                     sorted(glob.glob(f"{a.cache}/teacher-*.tkc"))[0], a.examples)  # fmt: skip
        return
    a.table_examples = a.table_examples or 256
    path = a.cache if a.cache.endswith(".tkc") else sorted(glob.glob(f"{a.cache}/teacher-*.tkc"))[0]
    reader = _core.CacheReader(path)
    n = min(reader.n_examples, a.examples)
    ex = np.arange(n, dtype=np.uint64)
    ppe = reader.positions_of(ex).astype(np.int64)
    ids, logp, tail, k = reader.gather(ex)
    step = reader.step
    n_pos, width = ids.shape
    valid = np.arange(width)[None, :] < k[:, None]
    q = np.where(valid, np.round(-logp / step), 0).astype(np.int64)
    dq = np.diff(np.concatenate([np.zeros((n_pos, 1), np.int64), q], 1), axis=1)
    dq[:, 0] = q[:, 0]
    pos_end = np.cumsum(ppe)
    blocks = []  # (position range) per block
    for e0 in range(0, n, a.block_examples):
        e1 = min(e0 + a.block_examples, n)
        p0 = int(pos_end[e0 - 1]) if e0 else 0
        blocks.append((p0, int(pos_end[e1 - 1]) if e1 else 0))
    pos_table = int(pos_end[min(a.table_examples, n) - 1])
    rank_first, n_first = rank_of(ids[:pos_table], k[:pos_table])
    rank_all, n_all = rank_of(ids, k)

    def table_bytes(rank: np.ndarray, n_ids: int, level: int) -> int:
        table = np.argsort(rank)[:n_ids]
        return len(zstandard.ZstdCompressor(level=level).compress(planes(table)))

    def total(ids_part, level=3, split=0, table=0) -> float:
        """split 0: one zstd frame per block; 1: ids and values in two; 2: one frame per
        part (k + tail, each id byte plane, values)."""
        z = zstandard.ZstdCompressor(level=level, write_checksum=True)
        size = table
        for p0, p1 in blocks:
            sel = valid[p0:p1]
            head = k[p0:p1].astype(np.uint16).tobytes() + tail[p0:p1].astype(np.float32).tobytes()
            vals = varints(dq[p0:p1][sel])
            idb = ids_part(p0, p1, sel)
            if split == 2:
                n_e = max(int(sel.sum()), 1)
                parts = [head, *(idb[i : i + n_e] for i in range(0, len(idb), n_e)), vals]
                size += sum(len(z.compress(x)) for x in parts)
            elif split:
                size += len(z.compress(head + idb)) + len(z.compress(vals))
            else:
                size += len(z.compress(head + idb + vals))
        return size / n_pos

    def sorted_gaps(p0, p1, sel):
        rows = ids[p0:p1].astype(np.int64)
        rows = np.where(sel, rows, np.iinfo(np.int64).max)
        by_id = np.argsort(rows, axis=1, kind="stable")
        srt = np.take_along_axis(rows, by_id, 1)
        gaps = np.diff(np.concatenate([np.zeros((len(rows), 1), np.int64), srt], 1), axis=1)
        perm = np.argsort(by_id, axis=1)
        return planes(gaps[sel]) + perm[sel].astype(np.uint8).tobytes()

    first = table_bytes(rank_first, n_first, 3)
    every = table_bytes(rank_all, n_all, 3)
    rows = [
        ("format 1: id byte planes, probability order",
         total(lambda p0, p1, s: planes(ids[p0:p1][s]))),
        (f"rank remap (table of the first {a.table_examples} examples), byte planes",
         total(lambda p0, p1, s: planes(rank_first[ids[p0:p1][s]]), table=first)),
        ("rank remap (table of all examples), byte planes",
         total(lambda p0, p1, s: planes(rank_all[ids[p0:p1][s]]), table=every)),
        (f"rank remap (first {a.table_examples}), byte code (c = 128) + low bytes",
         total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]]), table=first)),
        (f"rank remap (first {a.table_examples}), byte code (c = 128), a frame per part",
         total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]]), split=2, table=first)),
        (f"rank remap (first {a.table_examples}), byte code (c = 160) + low bytes",
         total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]], 160), table=first)),
        (f"rank remap (first {a.table_examples}), byte code (c = 64) + low bytes",
         total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]], 64), table=first)),
        ("ids sorted per position: gap planes + u8 permutation", total(sorted_gaps)),
        (f"rank remap (first {a.table_examples}), planes, ids and values in two frames",
         total(lambda p0, p1, s: planes(rank_first[ids[p0:p1][s]]), split=1, table=first)),
        (f"rank remap (first {a.table_examples}), planes, a frame per part",
         total(lambda p0, p1, s: planes(rank_first[ids[p0:p1][s]]), split=2, table=first)),
        ("format 1 with a frame per part",
         total(lambda p0, p1, s: planes(ids[p0:p1][s]), split=2)),
    ]  # fmt: skip
    for m in (2, 4, 16):
        rank_m, n_m = rank_of(ids[:pos_table], k[:pos_table], m)
        rows.append(
            (f"rank remap (first {a.table_examples}, ids seen >= {m}x: {n_m:,}), a frame per part",
             total(lambda p0, p1, s: planes(rank_m[ids[p0:p1][s]]),  # noqa: B023
                   split=2, table=table_bytes(rank_m, n_m, 3)))
        )  # fmt: skip
    for c in (64, 128):
        rows.append(
            (f"rank remap (first {a.table_examples}), byte code (c = {c}), a frame per part, "
             "zstd level 6",
             total(lambda p0, p1, s: byte_code(rank_first[ids[p0:p1][s]], c),  # noqa: B023
                   level=6, split=2, table=table_bytes(rank_first, n_first, 6)))
        )  # fmt: skip
    for level in (1, 6, 9):
        rows.append(
            (f"rank remap (first {a.table_examples}), planes, a frame per part, zstd level {level}",
             total(lambda p0, p1, s: planes(rank_first[ids[p0:p1][s]]), level=level, split=2,
                   table=table_bytes(rank_first, n_first, level)))
        )  # fmt: skip
    print(f"{path}: {n} examples, {n_pos:,} positions, {int(k.sum()):,} entries, width "
          f"{width}, blocks of {a.block_examples}, zstd level 3 unless said; the file: "
          f"{Path(path).stat().st_size / n_pos:.1f} B/position (all of it: "
          f"{reader.n_examples} examples)")  # fmt: skip
    print(f"rank table: {n_first:,} ids seen in the first {a.table_examples} examples "
          f"({first / n_pos:.2f} B/position here), {n_all:,} in all")  # fmt: skip
    print(f"order-0 entropy: ids {entropy_bytes(ids[valid]) / n_pos:.1f} B/position, "
          f"values (deltas) {entropy_bytes(dq[valid]) / n_pos:.1f}")  # fmt: skip
    print("| block coding | bytes/position (all of it) |\n| --- | ---: |")
    for name, b in rows:
        print(f"| {name} | {b:.1f} |")
    t, cpu = time.perf_counter(), time.thread_time()
    reader2 = _core.CacheReader(path)
    reader2.gather(ex)
    rate = k.sum() / (time.perf_counter() - t) / 1e6
    rate_cpu = k.sum() / (time.thread_time() - cpu) / 1e6
    print(f"(decode of the file as is: {rate:.0f} M entries/s, {rate_cpu:.0f} per CPU second)")


if __name__ == "__main__":
    main()
