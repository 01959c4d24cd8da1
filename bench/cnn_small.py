"""The `cnn-small` reference model shared by bench/torch_bench.py and bench/torch_pgd.py.

Conv2d(1,32,3,padding=1) conv1, ReLU, MaxPool2d(2), Conv2d(32,64,3,padding=1) conv2, ReLU, MaxPool2d(2),
Flatten, Linear(3136,128) fc1, ReLU, Linear(128,10) fc2. Weights in an .npz with the keys of WEIGHT_SHAPES,
in PyTorch layout (fc1.weight is [out, in] = [128, 3136]).
"""

import os
import sys


def _pin_library_threads():
    """Make --threads also bind the BLAS/OpenMP pools, which read their thread counts when loaded (before
    torch is imported); torch.set_num_threads does not reach a generic (non-MKL) BLAS such as OpenBLAS."""
    for i, a in enumerate(sys.argv):
        t = a.split("=", 1)[1] if a.startswith("--threads=") else (
            sys.argv[i + 1] if a == "--threads" and i + 1 < len(sys.argv) else None)
        if t and t.isdigit():
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ[var] = t


_pin_library_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

WEIGHT_SHAPES = {
    "conv1.weight": (32, 1, 3, 3),
    "conv1.bias": (32,),
    "conv2.weight": (64, 32, 3, 3),
    "conv2.bias": (64,),
    "fc1.weight": (128, 3136),
    "fc1.bias": (128,),
    "fc2.weight": (10, 128),
    "fc2.bias": (10,),
}


class CnnSmall(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(3136, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


def usage_error(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def build_model(weights=None, seed=0):
    """cnn-small with weights from an .npz (exact keys and shapes required) or, without one, PyTorch's default
    initialization under torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    model = CnnSmall()
    if weights:
        try:
            z = np.load(weights)
        except (OSError, ValueError) as e:
            usage_error(f"cannot read weights {weights}: {e}")
        if not isinstance(z, np.lib.npyio.NpzFile):
            usage_error(f"{weights}: expected an .npz archive of named arrays")
        state = {}
        for key, shape in WEIGHT_SHAPES.items():
            if key not in z.files:
                usage_error(f"{weights}: missing key {key} (has {sorted(z.files)})")
            arr = np.asarray(z[key], dtype=np.float32)
            if tuple(arr.shape) != shape:
                usage_error(f"{weights}: {key} has shape {list(arr.shape)}, expected {list(shape)}")
            state[key] = torch.from_numpy(arr.copy())
        model.load_state_dict(state)
    return model.eval()


def save_weights(model, path):
    np.savez(path, **{k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()})
