#!/usr/bin/python3
"""PyTorch side of Bulwark's engine benchmark on `cnn-small` (see bench/cnn_small.py).

Times, after warm-up, the median over --iters runs of:
  forwardMs     forward pass only, under torch.no_grad()
  inputGradMs   forward + gradient of the summed cross-entropy w.r.t. the input (x.requires_grad; the
                parameters are frozen, as an attack would do, so autograd computes no weight gradients)
  trainStepMs   one training step: zero_grad, forward, mean cross-entropy, backward, SGD(lr 0.01, momentum 0.9)
on one fixed batch of MNIST-shaped inputs ([B,1,28,28], uniform [0,1] from a seed, or --input X.npy), and the
machine's float32 matrix-multiply rate (torch.mm of 1024x1024, best of several runs, GFLOP/s = 2n^3 / t).

Usage: /usr/bin/python3 bench/torch_bench.py [--weights W.npz] [--threads T] [--batch 128] [--iters K] [--json]
Without --weights the model uses PyTorch's default init under --seed (--save-weights W.npz writes them).
With --json it prints exactly one JSON line:
  {"threads", "batch", "forwardMs", "inputGradMs", "trainStepMs", "imagesPerSecInputGrad", "imagesPerSecTrain",
   "torch", "matmulGflops", ...}
"""

import argparse
import copy
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


from cnn_small import build_model, save_weights, usage_error  # noqa: E402  (first: pins BLAS/OpenMP threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def timed(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), times


def p10(times):
    """The 10th percentile (the fastest tenth's edge): robust to a shared host's bursts, which only slow runs."""
    s = sorted(times)
    return s[len(s) // 10]


def matmul_gflops(n=1024, reps=10):
    g = torch.Generator().manual_seed(1)
    a = torch.rand(n, n, generator=g)
    b = torch.rand(n, n, generator=g)
    c = torch.empty(n, n)
    for _ in range(3):
        torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def loaded_blas():
    """The BLAS shared libraries mapped into this process (after a torch.mm call). torch.mm and Linear go
    through BLAS, convolutions through oneDNN; a reference (netlib) libblas is ~30x slower than OpenBLAS."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = os.path.basename(path).lower()
                if "blas" in name or "mkl_rt" in name or "libmkl" in name:
                    libs.add(os.path.realpath(path))
    except OSError:
        return None
    return sorted(libs)


def load_batch(args):
    if args.input:
        x = np.load(args.input)
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 255.0
        x = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28)
        if x.shape[0] < args.batch:
            usage_error(f"--input has {x.shape[0]} images, fewer than --batch {args.batch}")
        x = x[: args.batch]
        if args.labels:
            y = np.asarray(np.load(args.labels), dtype=np.int64).reshape(-1)[: args.batch]
        else:
            y = np.random.default_rng(args.seed).integers(0, 10, size=args.batch)
    else:
        rng = np.random.default_rng(args.seed)
        x = rng.uniform(0.0, 1.0, size=(args.batch, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, size=args.batch)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description="PyTorch cnn-small benchmark (forward, input gradient, train step)")
    ap.add_argument("--weights", help="cnn-small weights .npz (conv1.weight, ..., fc2.bias; torch layout)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20, help="timed iterations per measurement (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="seed for the random init and the random batch")
    ap.add_argument("--input", help="optional .npy of images (N,1,28,28 / N,28,28 / N,784; uint8 or float)")
    ap.add_argument("--labels", help="optional .npy of labels for --input")
    ap.add_argument("--save-weights", help="write the model's weights (e.g. the seeded random init) to this .npz")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    if args.threads < 1 or args.batch < 1 or args.iters < 1 or args.warmup < 0:
        usage_error("--threads, --batch and --iters must be positive")

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    model = build_model(args.weights, args.seed)
    if args.save_weights:
        save_weights(model, args.save_weights)
    x, y = load_batch(args)

    # (c) forward only
    def forward():
        with torch.no_grad():
            return model(x)

    # (a) forward + input gradient of the summed CE
    attack_model = copy.deepcopy(model).eval()
    for p in attack_model.parameters():
        p.requires_grad_(False)

    def input_grad():
        xg = x.clone().requires_grad_(True)
        loss = F.cross_entropy(attack_model(xg), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xg)
        return g

    # (b) one SGD training step on a separate copy
    train_model = copy.deepcopy(model).train()
    opt = torch.optim.SGD(train_model.parameters(), lr=0.01, momentum=0.9)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(train_model(x), y)
        loss.backward()
        opt.step()
        return loss

    with torch.no_grad():
        logits = model(x)
        ce_sum = float(F.cross_entropy(logits, y, reduction="sum"))
        accuracy = float((logits.argmax(1) == y).float().mean())
    grad_norm = float(input_grad().norm())

    forward_ms, forward_times = timed(forward, args.iters, args.warmup)
    input_grad_ms, input_grad_times = timed(input_grad, args.iters, args.warmup)
    train_ms, train_times = timed(train_step, args.iters, args.warmup)
    gflops = matmul_gflops()

    result = {
        "threads": args.threads,
        "batch": args.batch,
        "forwardMs": round(forward_ms, 3),
        "inputGradMs": round(input_grad_ms, 3),
        "trainStepMs": round(train_ms, 3),
        "forwardP10Ms": round(p10(forward_times), 3),
        "inputGradP10Ms": round(p10(input_grad_times), 3),
        "trainStepP10Ms": round(p10(train_times), 3),
        "imagesPerSecInputGrad": round(args.batch / (input_grad_ms / 1000.0), 1),
        "imagesPerSecTrain": round(args.batch / (train_ms / 1000.0), 1),
        "torch": torch.__version__,
        "matmulGflops": round(gflops, 2),
        "blas": loaded_blas(),
        "model": "cnn-small",
        "iters": args.iters,
        "warmup": args.warmup,
        "weights": args.weights or f"random(seed={args.seed})",
        "ceSum": ce_sum,
        "inputGradNorm": grad_norm,
        "accuracy": accuracy,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"cnn-small, batch {args.batch}, {args.threads} thread(s), torch {torch.__version__}, "
              f"median of {args.iters} after {args.warmup} warm-up")
        print(f"  forward            {forward_ms:9.2f} ms")
        print(f"  forward+input grad {input_grad_ms:9.2f} ms  ({result['imagesPerSecInputGrad']:.0f} images/s)")
        print(f"  train step (SGD)   {train_ms:9.2f} ms  ({result['imagesPerSecTrain']:.0f} images/s)")
        print(f"  matmul 1024^2 fp32 {gflops:9.1f} GFLOP/s  (BLAS: {', '.join(result['blas'] or ['?'])})")


if __name__ == "__main__":
    main()
