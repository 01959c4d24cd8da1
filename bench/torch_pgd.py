#!/usr/bin/python3
"""PyTorch reference PGD (L-inf) on `cnn-small` (see bench/cnn_small.py), for Bulwark's attack benchmark.

Textbook PGD without random start, every example runs all steps (no early stop):
  x_0 = x;  x_{t+1} = clip_[lo,hi]( proj_{|. - x|_inf <= eps}( x_t + alpha * sign(grad_x CE(f(x_t), y)) ) )
where the gradient is that of the summed cross-entropy of the batch (per-example gradients are independent).

Usage: /usr/bin/python3 bench/torch_pgd.py --weights W.npz --images X.npy --labels Y.npy
         [--eps 0.3] [--steps 40] [--step-size 0.01] [--batch 128] [--limit N] [--threads T] [--json]
Images: .npy of shape (N,1,28,28), (N,28,28) or (N,784); uint8 is scaled by 1/255. Labels: .npy of ints.
(An .npz holding x/y or images/labels can be given to --images, then --labels is not needed.)
Prints {"robustAccuracy", "cleanAccuracy", "seconds", "imagesPerSec", ...}; robustAccuracy counts an example
as robust when it is classified correctly both clean and after the attack (misclassified clean inputs are
not robust); advAccuracy is the plain accuracy on the adversarial inputs.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cnn_small import build_model, usage_error  # noqa: E402  (first: pins BLAS/OpenMP threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def load_data(images, labels, limit):
    try:
        raw = np.load(images)
    except (OSError, ValueError) as e:
        usage_error(f"cannot read {images}: {e}")
    if isinstance(raw, np.lib.npyio.NpzFile):
        xk = next((k for k in ("x", "images", "X") if k in raw.files), None)
        yk = next((k for k in ("y", "labels", "Y") if k in raw.files), None)
        if xk is None or (yk is None and not labels):
            usage_error(f"{images}: expected keys x/y or images/labels, found {raw.files}")
        x = raw[xk]
        y = np.load(labels) if labels else raw[yk]
    else:
        if not labels:
            usage_error("--labels is required with an .npy of images")
        x, y = raw, np.load(labels)
    x = (x.astype(np.float32) / 255.0) if x.dtype == np.uint8 else x.astype(np.float32)
    x = x.reshape(-1, 1, 28, 28)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if x.shape[0] != y.shape[0]:
        usage_error(f"{x.shape[0]} images but {y.shape[0]} labels")
    if limit:
        x, y = x[:limit], y[:limit]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)


def pgd(model, x, y, eps, alpha, steps, lo, hi):
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = x_adv + alpha * g.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
            x_adv = x_adv.clamp(lo, hi)
    return x_adv.detach()


def main():
    ap = argparse.ArgumentParser(description="PyTorch PGD-Linf reference on cnn-small")
    ap.add_argument("--weights", help="cnn-small weights .npz (without: seeded random init, see --seed)")
    ap.add_argument("--images", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--step-size", type=float, default=0.01)
    ap.add_argument("--bounds", type=float, nargs=2, default=[0.0, 1.0], metavar=("LO", "HI"))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N examples")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-adv", help="write the adversarial images (float32, N,1,28,28) to this .npy")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.steps < 0 or args.batch < 1 or args.eps < 0 or args.threads < 1:
        usage_error("bad --steps/--batch/--eps/--threads")

    torch.set_num_threads(args.threads)
    model = build_model(args.weights, args.seed)
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_data(args.images, args.labels, args.limit)
    lo, hi = args.bounds
    n = x.shape[0]

    with torch.no_grad():
        clean_pred = torch.cat([model(x[i:i + args.batch]).argmax(1) for i in range(0, n, args.batch)])
    clean_ok = clean_pred == y

    t0 = time.perf_counter()
    advs = [pgd(model, x[i:i + args.batch], y[i:i + args.batch], args.eps, args.step_size, args.steps, lo, hi)
            for i in range(0, n, args.batch)]
    seconds = time.perf_counter() - t0
    x_adv = torch.cat(advs)
    with torch.no_grad():
        adv_pred = torch.cat([model(x_adv[i:i + args.batch]).argmax(1) for i in range(0, n, args.batch)])
    adv_ok = adv_pred == y
    linf = float((x_adv - x).abs().amax()) if n else 0.0
    if args.save_adv:
        np.save(args.save_adv, x_adv.numpy())

    result = {
        "robustAccuracy": float((clean_ok & adv_ok).float().mean()) if n else 0.0,
        "cleanAccuracy": float(clean_ok.float().mean()) if n else 0.0,
        "seconds": round(seconds, 4),
        "imagesPerSec": round(n / seconds, 2) if seconds > 0 else None,
        "advAccuracy": float(adv_ok.float().mean()) if n else 0.0,
        "examples": n,
        "eps": args.eps,
        "steps": args.steps,
        "stepSize": args.step_size,
        "batch": args.batch,
        "threads": args.threads,
        "maxLinf": linf,
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"PGD-Linf eps {args.eps}, {args.steps} steps of {args.step_size}, {n} examples, "
              f"{args.threads} thread(s)")
        print(f"  clean accuracy  {result['cleanAccuracy']:.4f}")
        print(f"  robust accuracy {result['robustAccuracy']:.4f}   (adversarial accuracy {result['advAccuracy']:.4f})")
        print(f"  {seconds:.2f} s, {result['imagesPerSec']} images/s, max Linf {linf:.4f}")


if __name__ == "__main__":
    main()
