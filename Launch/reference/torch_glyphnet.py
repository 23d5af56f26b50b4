#!/usr/bin/env python3
"""PyTorch reference implementation of xbm-dist's glyphnet with the XBM contrastive loss.

This is the project's yardstick: the same network as xbm-dist's `glyphnet` (four 3x3
conv-BN-ReLU blocks of 32/64/128/256 channels with 2x2 max pooling between them, global
average pooling, a linear layer to `--dim`, L2-normalised), batches of P classes x K
instances (`--batch`, `--instances`, one random shift of up to 2 pixels per batch), the same
contrastive loss (positives pulled to 1, negatives pushed below the margin 0.5, summed over
pairs and averaged over anchors) and the same cross-batch memory (a FIFO of the last
`--xbm-size` embeddings, each anchor compared with the whole memory from `--xbm-start` on,
its own fresh entry excluded), trained by PyTorch on the CPU with a chosen number of
threads. Its training loop is deliberately plain and must stay as it is: figures measured
with it are only comparable while it does not change.

Two modes:

  speed     python3 torch_glyphnet.py --steps 200 --threads 2 [--xbm-size 16384]
            Trains on random images (10 untimed warm-up steps, then --steps timed ones) and
            prints one JSON line with images_per_second. Launch/bench compares it with
            `xbm-dist bench step`.

  accuracy  python3 torch_glyphnet.py --data DIR --iters 2400 [--xbm-size 16384 --xbm-start 800]
            Trains on the training split (0) of an xbm-dist dataset directory of 32x32 uint8
            images (x.npy, y.npy, split.npy; see Docs/data.md) with Adam at a constant rate,
            then embeds the test split (1) and prints one JSON line: Recall@1/10/100/1000 and
            MAP@R (in %), plus "seed", "iters" and "seconds" (wall time of loading, training
            and evaluation).

In both modes `--out FILE` also writes that JSON object to FILE.

Evaluation differs from xbm-dist's in one documented point: Recall@K counts a query whose
class has no other test item as a miss (xbm-dist skips it); on hanzi every class has 27
items, so both agree. MAP@R follows xbm-dist exactly (Docs/evaluation.md): R = the number of
other test items with the query's label, queries with R = 0 skipped, neighbours ranked by
similarity with ties broken by lower index, the query removed by index, NaN ranked lowest.

Setup: Launch/reference/setup creates a virtual environment with requirements.txt
(torch==2.13.0, numpy) and prints its python.
"""
import argparse, json, os, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def glyphnet(dim):
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*block(1, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                         *block(64, 128), nn.MaxPool2d(2), *block(128, 256),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, dim))


def contrastive(anchors, labels, refs, ref_labels, exclude_self, margin=0.5, eps=1e-5):
    """XBM's contrastive loss: per anchor, the sum over its active pairs; then the mean over anchors."""
    s = anchors @ refs.t()
    pos = labels[:, None] == ref_labels[None, :]
    if exclude_self is not None:  # column index of each anchor's own entry
        own = torch.zeros_like(pos)
        own[torch.arange(len(labels)), exclude_self] = True
        pos = pos & ~own
        neg = ~(labels[:, None] == ref_labels[None, :])
    else:
        neg = ~pos
    pos_term = ((1 - s) * (pos & (s < 1 - eps))).sum(1)
    neg_term = (s * (neg & (s > margin))).sum(1)
    return (pos_term + neg_term).mean()


class Memory:
    def __init__(self, size, dim):
        self.feats = torch.zeros(size, dim)
        self.labels = torch.zeros(size, dtype=torch.long)
        self.size, self.head, self.count = size, 0, 0

    def enqueue(self, feats, labels):
        idx = (torch.arange(len(labels)) + self.head) % self.size
        self.feats[idx], self.labels[idx] = feats, labels
        self.head = (self.head + len(labels)) % self.size
        self.count = min(self.count + len(labels), self.size)
        return idx  # where this batch now sits

    def view(self):
        return self.feats[:self.count], self.labels[:self.count]


def load(dir_):
    x = np.load(os.path.join(dir_, "x.npy"))
    y = np.load(os.path.join(dir_, "y.npy")).astype(np.int64)
    split = np.load(os.path.join(dir_, "split.npy"))
    return x, y, split


def ranked_top(s, k):
    """Column indices of the k best entries of each row of s: higher first, ties by lower index.

    topk alone may pick any of the entries tied at the k-th value; in the rows where such a tie
    crosses the cut (the (k+1)-th value equals the k-th), the tied entries of lowest index are
    taken instead. NaN ranks lowest."""
    vals, idx = s.topk(min(k + 1, s.shape[1]), dim=1)
    if torch.isnan(vals).any():  # topk ranks NaN highest
        s = torch.where(torch.isnan(s), torch.tensor(float("-inf")), s)
        vals, idx = s.topk(min(k + 1, s.shape[1]), dim=1)
    ambiguous = (vals[:, k] == vals[:, k - 1]).nonzero().flatten().tolist() if vals.shape[1] > k else []
    vals, idx = vals[:, :k].clone(), idx[:, :k].clone()
    for r in ambiguous:
        cut = vals[r, k - 1]
        better = (s[r] > cut).nonzero().flatten()
        tied = (s[r] == cut).nonzero().flatten()[:k - len(better)]
        idx[r] = torch.cat([better, tied])
        vals[r] = s[r, idx[r]]
    by_index = idx.sort(dim=1).indices
    idx, vals = idx.gather(1, by_index), vals.gather(1, by_index)
    return idx.gather(1, vals.sort(dim=1, descending=True, stable=True).indices)


def average_precision_at_r(s, first, labels, others):
    """Sum of AP@R over the rows of s (queries first, first+1, ... of the set) with R > 0, and
    their number. others[i] = R of item i; the query itself is removed by index."""
    rows = s.shape[0]
    r = others[first:first + rows, None]
    idx = ranked_top(s, min(int(others.max()) + 1, s.shape[1]))
    keep = idx != torch.arange(first, first + rows)[:, None]
    rank = keep.cumsum(1)  # rank among the other items, valid where keep
    rel = keep & (rank <= r) & (labels[idx] == labels[first:first + rows, None])
    precision = rel.cumsum(1).double() / rank.clamp(min=1).double()
    ap = (precision * rel).sum(1) / r[:, 0].clamp(min=1).double()
    scored = r[:, 0] > 0
    return ap[scored].sum().item(), int(scored.sum().item())


def recall_at_k(emb, labels, ks=(1, 10, 100, 1000)):
    hits = {k: 0 for k in ks}
    kmax = min(max(ks), len(emb) - 1)
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    others = counts[inverse] - 1
    ap_sum, scored = 0.0, 0
    for i in range(0, len(emb), 2048):
        s = emb[i:i + 2048] @ emb.t()
        s[torch.arange(s.shape[0]), torch.arange(i, i + s.shape[0])] = -9.0
        nn_idx = s.topk(kmax, dim=1).indices
        match = labels[nn_idx] == labels[i:i + 2048, None]
        for k in ks:
            hits[k] += match[:, :min(k, kmax)].any(1).sum().item()
        # MAP@R on the same similarities (the -9 on the query's own entry does not matter:
        # it is removed by index).
        block_sum, block_scored = average_precision_at_r(s, i, labels, others)
        ap_sum += block_sum
        scored += block_scored
    result = {f"R@{k}": 100.0 * v / len(emb) for k, v in hits.items()}
    result["MAP@R"] = 100.0 * ap_sum / scored if scored else 0.0
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data")
    p.add_argument("--steps", type=int, default=200, help="speed mode: timed steps")
    p.add_argument("--iters", type=int, default=2400, help="accuracy mode: training steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--xbm-size", type=int, default=0)
    p.add_argument("--xbm-start", type=int, default=0)
    p.add_argument("--xbm-weight", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the final JSON result to this file")
    a = p.parse_args()
    started = time.perf_counter()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    torch.set_num_threads(a.threads)
    net = glyphnet(a.dim)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    mem = Memory(a.xbm_size, a.dim) if a.xbm_size else None

    if a.data:
        x, y, split = load(a.data)
        train = split == 0
        xtr = torch.tensor(x[train]).float().div(255).reshape(-1, 1, 32, 32)
        ytr = torch.tensor(y[train])
        by_class = {}
        for i, c in enumerate(ytr.tolist()):
            by_class.setdefault(c, []).append(i)
        classes = list(by_class)
        steps = a.iters
    else:
        steps = a.steps + 10  # the first 10 are warm-up, not timed

    P = a.batch // a.instances
    t0 = None
    step_times = []
    for it in range(steps):
        ts = time.perf_counter()
        if a.data:
            idx = []
            for c in rng.choice(len(classes), P, replace=False):
                pool = by_class[classes[c]]
                idx += list(rng.choice(pool, a.instances, replace=len(pool) < a.instances))
            xb, yb = xtr[idx], ytr[idx]
            xb = F.pad(xb, (2, 2, 2, 2))
            dx, dy = rng.integers(0, 5, 2)
            xb = xb[:, :, dy:dy + 32, dx:dx + 32]
        else:
            if it == 10:
                t0 = time.perf_counter()
            xb = torch.rand(a.batch, 1, 32, 32)
            yb = torch.arange(a.batch) // a.instances + 1000 * (it % 50)
        e = F.normalize(net(xb), dim=1)
        loss = contrastive(e, yb, e, yb, torch.arange(len(yb)))
        if mem is not None and it >= a.xbm_start:
            own = mem.enqueue(e.detach(), yb)
            feats, labels = mem.view()
            loss = loss + a.xbm_weight * contrastive(e, yb, feats, labels, own)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not a.data and it >= 10:
            step_times.append(time.perf_counter() - ts)
        if a.data and (it + 1) % 200 == 0:
            print(f"iter {it + 1}/{steps} loss {loss.item():.4f}", flush=True)

    if not a.data:
        dt = time.perf_counter() - t0
        med = sorted(step_times)[len(step_times) // 2]
        report(a.out, {"images_per_second": a.steps * a.batch / dt,
                       "images_per_second_median_step": a.batch / med, "steps": a.steps,
                       "batch": a.batch, "threads": a.threads, "xbm_size": a.xbm_size})
        return
    net.eval()
    test = split == 1
    xte = torch.tensor(x[test]).float().div(255).reshape(-1, 1, 32, 32)
    yte = torch.tensor(y[test])
    with torch.no_grad():
        emb = torch.cat([F.normalize(net(xte[i:i + 1024]), dim=1) for i in range(0, len(xte), 1024)])
        result = recall_at_k(emb, yte)
    result.update(seed=a.seed, iters=a.iters, seconds=round(time.perf_counter() - started, 3))
    report(a.out, result)


def report(out, result):
    """Prints the result as one JSON line; with --out also writes it to that file."""
    line = json.dumps(result)
    print(line, flush=True)
    if out:
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.replace(tmp, out)


if __name__ == "__main__":
    main()
