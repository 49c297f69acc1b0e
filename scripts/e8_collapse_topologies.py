#!/usr/bin/env python3
"""E8 (c): expected loss of the "two pairs collapsed" and "three pairs collapsed" optima of the
three-correlated-pairs model (ReLU output, n = 6, m = 2, I = 1, pairs {0,1}, {2,3}, {4,5}; p = the
probability a pair is active, which is also each feature's density: experiments.md §1).

Where do the paper's collapse regimes come from? This optimises each configuration directly and
compares their expected losses, independently of tms's training (numpy only):
- the loss is a stratified Monte Carlo estimate: each of the 7 non-empty patterns of active pairs
  gets M samples weighted by its probability; the all-inactive pattern is exact;
- each configuration is optimised by full-batch Adam (lr 1e-2, cosine decay, no weight decay) on a
  fixed sample from a hand-built start (three collapsed pairs at 120°; two collapsed pairs and one
  split pair; six directions side by side), then evaluated on a larger, fresh sample common to all.

Measured (M = 10 000 to optimise, 200 000 to evaluate; "collapsed" = cos > 0.9 as in the report):
  p      L(2 collapsed)  L(3 collapsed)  difference
  0.30   0.021824        0.022694        +3.99 %
  0.325  0.024758        0.025435        +2.73 %
  0.35   0.027824        0.028277        +1.63 %
  0.375  0.031002        0.031206        +0.66 %
  0.40   0.034261        0.034199        −0.18 %
The optimum of two collapsed pairs is a square: the two collapsed pairs ~95° apart, the third pair
split into two orthogonal members antipodal to them. Three collapsed pairs below p ≈ 0.4 is a "T"
(one collapsed pair alone, the other two antipodal), a local minimum; at p = 0.5 a triangle.

Usage: scripts/e8_collapse_topologies.py [p ...]   (default: the densities above)
"""
import itertools
import sys

import numpy as np

N_FEATURES, N_HIDDEN = 6, 2
PATTERNS = [np.array(s) for s in itertools.product([0, 1], repeat=3) if any(s)]


def sample(count, p, rng):
    """Stratified sample: rows, their weights, and the probability that no pair is active."""
    xs, ws = [], []
    for s in PATTERNS:
        prob = np.prod(np.where(s == 1, p, 1 - p))
        xs.append(rng.random((count, N_FEATURES)) * np.repeat(s, 2))
        ws.append(np.full(count, prob / count))
    return np.vstack(xs), np.concatenate(ws), (1 - p) ** 3


def loss(W, b, X, w, empty, gradient=True):
    """Expected mean squared error over features of x' = ReLU(WᵀW x + b) (and its gradient)."""
    H = X @ W.T
    Y = H @ W + b
    R = np.maximum(Y, 0) - X
    value = (w @ R**2).sum() / N_FEATURES + empty * (np.maximum(b, 0) ** 2).sum() / N_FEATURES
    if not gradient:
        return value
    dY = (2 / N_FEATURES) * (R * (Y > 0)) * w[:, None]
    db = dY.sum(0) + empty * 2 * np.maximum(b, 0) / N_FEATURES
    return value, H.T @ dY + (dY @ W.T).T @ X, db


def optimise(W, b, X, w, empty, steps=4000, lr=1e-2):
    """Full-batch Adam with cosine decay."""
    params = [W.copy(), b.copy()]
    first = [np.zeros_like(q) for q in params]
    second = [np.zeros_like(q) for q in params]
    for t in range(1, steps + 1):
        rate = lr * (0.99 * 0.5 * (1 + np.cos(np.pi * t / steps)) + 0.01)
        _, dW, db = loss(params[0], params[1], X, w, empty)
        for q, g, m, v in zip(params, [dW, db], first, second):
            m[:] = 0.9 * m + 0.1 * g
            v[:] = 0.999 * v + 0.001 * g * g
            q -= rate * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return params


def collapsed(W):
    """Pairs whose members' cosine exceeds 0.9."""
    cos = lambda i, j: W[:, i] @ W[:, j] / (np.linalg.norm(W[:, i]) * np.linalg.norm(W[:, j]))
    return sum(cos(2 * k, 2 * k + 1) > 0.9 for k in range(3))


def start(pairs_collapsed):
    """Pairs 0..pairs_collapsed collapsed at 0°, 120°, 240°; the others split ±25° around theirs."""
    W = np.zeros((N_HIDDEN, N_FEATURES))
    for k, a in enumerate(np.radians([0.0, 120.0, 240.0])):
        split = 0.0 if k < pairs_collapsed else np.radians(25.0)
        W[:, 2 * k] = np.cos(a - split), np.sin(a - split)
        W[:, 2 * k + 1] = np.cos(a + split), np.sin(a + split)
    return W, np.zeros(N_FEATURES)


def main():
    densities = [float(a) for a in sys.argv[1:]] or [0.3, 0.325, 0.35, 0.375, 0.4]
    for p in densities:
        X, w, empty = sample(10_000, p, np.random.default_rng(1))
        Xe, we, empty_e = sample(200_000, p, np.random.default_rng(2))
        best = {}
        for pairs in (3, 2, 0):
            W, b = optimise(*start(pairs), X, w, empty)
            c = collapsed(W)
            best[c] = min(best.get(c, np.inf), loss(W, b, Xe, we, empty_e, gradient=False))
        row = "  ".join(f"L({c} collapsed) = {v:.6f}" for c, v in sorted(best.items()))
        if 2 in best and 3 in best:
            row += f"  difference {100 * (best[3] / best[2] - 1):+.2f} %"
        print(f"p = {p}: {row}", flush=True)


if __name__ == "__main__":
    main()
