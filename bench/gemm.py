#!/usr/bin/env python3
"""f32 GEMM throughput of this machine, for context beside the steps/s numbers.

Times C = A @ B in float32 for a few shapes (M×K times K×N) with numpy (its
bundled OpenBLAS) and with torch (its bundled BLAS, MKL on x86 wheels), on
--threads threads, and reports the median GFLOP/s (2·M·N·K flops per product)
over --repeats timed runs after a warm-up. threadpoolctl names the BLAS
library and kernel ("architecture") that numpy used. Before each shape it waits (up to
30 s) for the machine to be idle (bench/idle.py).

Run numpy's measurement with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
(`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...`) so OpenBLAS picks its
kernel from the CPU itself; the script records what those variables were.
"""

import argparse
import json
import os
import statistics
import sys
import time

from idle import wait_until_idle

# (name, M, K, N): C[M, N] = A[M, K] @ B[K, N]
SHAPES = [
    ("1024x1024x1024", 1024, 1024, 1024),
    # the dense-large forward GEMM: x[1024, 512] @ Wᵀ[512, 256]
    ("1024x512x256", 1024, 512, 256),
    # the task's "512×256×1024": A[512, 256] @ B[256, 1024]
    ("512x256x1024", 512, 256, 1024),
]


def time_it(fn, min_seconds=0.2, repeats=7):
    wait_until_idle(timeout=30.0)
    fn()  # warm-up
    # calibrate how many calls make one timed sample of >= min_seconds
    calls, dt = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            break
        calls *= 2
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t0) / calls)
    return samples


def bench_numpy(threads, repeats):
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    out = {"numpy_version": np.__version__}
    with threadpool_limits(limits=threads, user_api="blas"):
        info = [d for d in threadpool_info() if d.get("user_api") == "blas"]
        out["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "architecture",
                                               "num_threads", "filepath")} for d in info]
        rng = np.random.default_rng(0)
        for name, M, K, N in SHAPES:
            a = rng.standard_normal((M, K), dtype=np.float32)
            b = rng.standard_normal((K, N), dtype=np.float32)
            c = np.empty((M, N), dtype=np.float32)
            s = time_it(lambda: np.matmul(a, b, out=c), repeats=repeats)
            out[name] = round(2.0 * M * N * K / statistics.median(s) / 1e9, 1)
    return out


def bench_torch(threads, repeats):
    import torch

    torch.set_num_threads(threads)
    out = {"torch_version": torch.__version__,
           "blas": "mkl" if torch.backends.mkl.is_available() else "other",
           "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    g = torch.Generator().manual_seed(0)
    for name, M, K, N in SHAPES:
        a = torch.randn(M, K, generator=g)
        b = torch.randn(K, N, generator=g)
        c = torch.empty(M, N)
        s = time_it(lambda: torch.matmul(a, b, out=c), repeats=repeats)
        out[name] = round(2.0 * M * N * K / statistics.median(s) / 1e9, 1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--backend", choices=["numpy", "torch", "both"], default="both")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)

    doc = {"threads": args.threads, "statistic": "median GFLOP/s, f32, 2*M*N*K flops",
           "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}}
    if args.backend in ("numpy", "both"):
        doc["numpy"] = bench_numpy(args.threads, args.repeats)
    if args.backend in ("torch", "both"):
        doc["torch"] = bench_torch(args.threads, args.repeats)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json_out:
        tmp = args.json_out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
