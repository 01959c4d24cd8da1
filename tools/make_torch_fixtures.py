#!/usr/bin/python3
"""Build the PyTorch reference fixtures for Bulwark's ONNX autodiff pass.

For every model below this script writes fixtures/torch/<name>/:

  model.onnx        torch.onnx.export, do_constant_folding=False, input "input", output "output", batch axis "N"
  x.npy             float32 [6, ...] uniform in [0, 1]
  y.npy             int64 [6] labels; some examples classified correctly, some not (see meta.json "correct")
  out.npy           float32 output of the float32 model in eval mode
  grad_ce.npy       d/dx  sum_i CE(z_i, y_i)
  grad_margin.npy   d/dx  sum_i (max_{j != y_i} z_ij - z_iy_i)                                 (unclipped)
  grad_dlr.npy      d/dx  sum_i -(z_iy - max_{j != y} z_ij) / (z_i(1) - z_i(3) + 1e-12)        (Croce & Hein 2020)
  params_grad.npz   d/dtheta mean_i CE(z_i, y_i), keyed by ONNX initializer name
  meta.json         opset, outputKind, numClasses, inputShape, notes, op histogram, mappings, diagnostics

z are the logits: the model output, or for a model whose last op is Softmax, the input of that Softmax.
All reference gradients are computed by autograd on a float64 copy of the model (model.double(), x in
float64) and stored cast to float32; the float32-autograd gradients are compared against them and the
difference is recorded in meta.json.

Usage: /usr/bin/python3 tools/make_torch_fixtures.py [--out fixtures/torch] [--only name,name]
Deterministic: every model is built from its own seed; single-threaded, deterministic algorithms.
"""

import argparse
import copy
import json
import os
import random
from collections import Counter

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import onnx
from onnx import numpy_helper

BATCH = 6
BASE_SEED = 20240601
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TM = torch.onnx.TrainingMode


# ----------------------------------------------------------------------------------------------------------
# Models. Each has logits(x) (what the loss heads differentiate) and forward(x) (what is exported).
# ----------------------------------------------------------------------------------------------------------


class CnnNorm(nn.Module):
    """[N,1,28,28] -> 10 logits. Normalization inside the graph, stride-2 conv, grouped conv, BN, ReLU,
    overlapping ceil-mode max pool, dropout (eval), flatten, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)  # 28 -> 14
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, groups=4)  # 14 -> 14
        self.bn = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)  # 14 -> 8
        self.drop = nn.Dropout(0.25)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def logits(self, x):
        x = (x - 0.1307) / 0.3081
        x = F.relu(self.conv1(x))
        x = F.relu(self.bn(self.conv2(x)))
        x = self.pool(x)
        x = self.drop(x)
        return self.fc(self.flatten(x))

    def forward(self, x):
        return self.logits(x)


class MlpSoftmax(nn.Module):
    """[N,1,28,28] -> flatten -> Linear-ReLU-Linear-Tanh-Linear -> Softmax(dim=1): outputs probabilities."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 32)
        self.fc2 = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, 10)
        self.softmax = nn.Softmax(dim=1)

    def logits(self, x):
        x = self.flatten(x)
        x = torch.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)

    def forward(self, x):
        return self.softmax(self.logits(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.proj_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.proj is None else self.proj_bn(self.proj(x))
        return F.relu(out + short)

    def fuse_pairs(self, prefix):
        pairs = [(prefix + "conv1", prefix + "bn1"), (prefix + "conv2", prefix + "bn2")]
        if self.proj is not None:
            pairs.append((prefix + "proj", prefix + "proj_bn"))
        return pairs


class ResnetGap(nn.Module):
    """[N,3,16,16] -> stem conv-BN-ReLU -> identity block (16) -> strided block with 1x1 projection (32)
    -> BN-ReLU (after the residual add, so it stays a BatchNormalization node) -> GlobalAveragePool -> Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        self.block1 = BasicBlock(16, 16, 1)
        self.block2 = BasicBlock(16, 32, 2)  # 16x16 -> 8x8
        self.head_bn = nn.BatchNorm2d(32)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def logits(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.block2(self.block1(x))
        x = F.relu(self.head_bn(x))
        x = self.gap(x).flatten(1)
        return self.fc(x)

    def forward(self, x):
        return self.logits(x)

    def fuse_pairs(self):
        return [("stem", "stem_bn")] + self.block1.fuse_pairs("block1.") + self.block2.fuse_pairs("block2.")


class Zoo(nn.Module):
    """[N,2,12,12] -> 5 logits through many op types (see ZOO_REQUIRED_OPS)."""

    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(2, 4, 3, padding=1)
        self.inorm = nn.InstanceNorm2d(4, affine=True)
        self.avgpool = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.deconv = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.dconv = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.ln = nn.LayerNorm(14)
        self.gain = nn.Parameter(torch.empty(8, 1))  # broadcast against [N,1,8,84]
        self.fc = nn.Linear(24, 5)
        with torch.no_grad():
            self.gain.uniform_(0.75, 1.25)

    def logits(self, x):
        h = F.gelu(self.inorm(self.conv_in(x)))  # [N,4,12,12]
        b1 = self.deconv(self.avgpool(h))  # avgpool -> [N,4,7,7], deconv -> [N,4,14,14]
        b1 = b1[:, :, 1:13, 1:13]  # [N,4,12,12]
        b2 = F.interpolate(self.maxpool(h), scale_factor=2, mode="nearest")  # [N,4,6,6] -> [N,4,12,12]
        c = torch.cat([b1, b2], dim=1)  # [N,8,12,12]
        c = self.dconv(c)  # dilated, [N,8,12,12]
        c = F.pad(c, (1, 1, 1, 1), mode="constant", value=0.25)  # [N,8,14,14]
        c = c[:, :, 1:-1:2]  # rows 1,3,..,11 -> [N,8,6,14]
        c = self.ln(c)  # over the last dim (14)
        e_elu = F.elu(c)
        e_lrelu = F.leaky_relu(c, 0.1)
        e_selu = F.selu(c)
        e_sp = F.softplus(c)
        e_hs = F.hardsigmoid(c)
        e_sig = torch.sigmoid(c)
        e_tanh = torch.tanh(c)
        e_clip = torch.clamp(c, -0.5, 0.8)
        s = e_elu + 0.5 * e_lrelu * e_hs + 0.3 * e_selu - 0.2 * e_sp + e_sig * e_tanh + 0.5 * e_clip
        t = torch.sqrt(s * s + 1.0) + torch.log(1.0 + torch.exp(-s.abs())) + torch.pow(e_sig, 3.0)
        w = torch.where(s > 0, t, t - 0.5 * s * s)  # both branches agree at s == 0
        w = w.permute(0, 1, 3, 2)  # [N,8,14,6]
        w = w.reshape(w.shape[0], 8, -1)  # [N,8,84] (batch dim through Shape/Gather)
        q = torch.squeeze(w.unsqueeze(1) * self.gain, 1)  # [N,1,8,84] * [8,1] -> [N,8,84]
        m1 = q.mean(dim=-1)
        m2 = q.sum(dim=-1) * 0.05
        m3 = q.amax(dim=-1)
        f = torch.cat([m1, m2, m3], dim=1)  # [N,24]
        return self.fc(f)

    def forward(self, x):
        return self.logits(x)


ZOO_REQUIRED_OPS = [
    "Conv", "InstanceNormalization", "Erf", "AveragePool", "ConvTranspose", "Slice", "MaxPool", "Resize",
    "Concat", "Pad", "LayerNormalization", "Elu", "LeakyRelu", "Selu", "Softplus", "HardSigmoid", "Sigmoid",
    "Tanh", "Clip", "Abs", "Sqrt", "Exp", "Log", "Pow", "Where", "Greater", "Transpose", "Reshape",
    "Unsqueeze", "Squeeze", "ReduceMean", "ReduceSum", "ReduceMax", "Gemm",
]


class Conv1dNet(nn.Module):
    """[N,3,32] -> Conv1d(k5, s2, p2) -> BN1d -> ReLU -> MaxPool1d(2) -> AvgPool1d(3, s2, p1) -> Flatten -> Linear(4)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 8, 5, stride=2, padding=2)  # 32 -> 16
        self.bn = nn.BatchNorm1d(8)
        self.maxpool = nn.MaxPool1d(2)  # 16 -> 8
        self.avgpool = nn.AvgPool1d(3, stride=2, padding=1)  # 8 -> 4 (count_include_pad=True)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, 4)

    def logits(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.avgpool(self.maxpool(x))
        return self.fc(self.flatten(x))

    def forward(self, x):
        return self.logits(x)


class MlpLogSoftmax(nn.Module):
    """[N,8] -> Linear-ReLU-Linear -> LogSoftmax(dim=1). Log-probabilities act as logits."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 5)
        self.logsoftmax = nn.LogSoftmax(dim=1)

    def logits(self, x):
        return self.logsoftmax(self.fc2(torch.relu(self.fc1(x))))

    def forward(self, x):
        return self.logits(x)


# name, class, opset, example shape (without N), outputKind, number of classes, export training mode, notes
MODELS = [
    dict(name="cnn_norm", cls=CnnNorm, opset=13, shape=[1, 28, 28], kind="logits", classes=10, training=TM.PRESERVE,
         notes=["Input normalization (x - 0.1307) / 0.3081 is in the graph as Sub and Div with Constant operands.",
                "MaxPool kernel 3 stride 2 pad 1 ceil_mode=1: overlapping windows; 14x14 -> 8x8.",
                "nn.Dropout(0.25) is in the PyTorch model but the exporter drops it in eval mode: no Dropout node.",
                "Exported with training=TrainingMode.PRESERVE (model in eval mode) so that the exporter's eval "
                "peephole does not fold BatchNorm into the grouped Conv: the graph keeps a BatchNormalization node."]),
    dict(name="mlp_softmax", cls=MlpSoftmax, opset=11, shape=[1, 28, 28], kind="probs", classes=10,
         training=TM.EVAL,
         notes=["Ends in Softmax(axis=1) at opset 11: out.npy holds probabilities.",
                "All reference gradients (inputs and parameters) differentiate the logits before the Softmax, "
                "i.e. the input of the final Softmax node."]),
    dict(name="resnet_gap", cls=ResnetGap, opset=17, shape=[3, 16, 16], kind="logits", classes=10,
         training=TM.EVAL,
         notes=["Exported with the default training=TrainingMode.EVAL, as most users do: the exporter's eval "
                "peephole folds every Conv->BatchNorm pair (stem, block convs, projection shortcut) into the Conv, "
                "so those Conv initializers hold folded weights and biases. head_bn follows the residual Add and "
                "stays a BatchNormalization node.",
                "params_grad.npz entries for folded Conv initializers are gradients with respect to the folded "
                "weights/biases (computed on a torch copy with torch.nn.utils.fusion.fuse_conv_bn_eval whose "
                "folded parameters are overwritten with the exact ONNX initializer values); see foldedParams.",
                "AdaptiveAvgPool2d(1) exports as GlobalAveragePool."]),
    dict(name="zoo", cls=Zoo, opset=17, shape=[2, 12, 12], kind="logits", classes=5, training=TM.EVAL,
         notes=["Op coverage model; requiredOps lists the op types asserted present after export.",
                "GELU (exact) exports as Div, Erf, Add, Mul, Mul at opset 17.",
                "AvgPool2d(3, s2, p1, ceil_mode=True, count_include_pad=False): 12x12 -> 7x7; the last window "
                "overhangs the padded input and its divisor counts only real cells.",
                "ConvTranspose2d(k3, s2, p1, output_padding 1): 7x7 -> 14x14. Resize nearest x2: 6x6 -> 12x12.",
                "torch.where(s > 0, t, t - 0.5 s^2) has continuous branches at s == 0.",
                "self.gain [8,1] broadcasts against [N,1,8,84] (rank-expanding Mul broadcast).",
                "amax is taken over continuous values (ties have probability zero).",
                "params_grad.npz conv_in.bias is analytically zero (InstanceNormalization removes any per-channel "
                "constant); the stored values are float64 round-off (~1e-17): compare it with an absolute "
                "tolerance.",
                "The graph has shape-only subgraphs (Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Cast) for "
                "the dynamic Reshape, Pad and Resize."]),
    dict(name="conv1d", cls=Conv1dNet, opset=12, shape=[3, 32], kind="logits", classes=4, training=TM.PRESERVE,
         notes=["Exported with training=TrainingMode.PRESERVE (model in eval mode) so BatchNorm1d stays a "
                "BatchNormalization node (the eval peephole would fold it into the Conv).",
                "AvgPool1d(3, stride 2, padding 1) with count_include_pad=True: the exporter may emit an explicit "
                "Pad before AveragePool (see opHistogram)."]),
    dict(name="mlp_logsoftmax", cls=MlpLogSoftmax, opset=13, shape=[8], kind="logits", classes=5, training=TM.EVAL,
         notes=["Ends in LogSoftmax(axis=1): the log-probabilities are treated as logits (outputKind 'logits'). "
                "CE, margin and DLR are invariant to the per-example shift, so they equal those of the pre-"
                "LogSoftmax logits; the reference gradients differentiate through the LogSoftmax."]),
]


# ----------------------------------------------------------------------------------------------------------
# Losses on logits z [N, C] and labels y [N]; each returns the sum over the batch.
# ----------------------------------------------------------------------------------------------------------


def loss_ce(z, y):
    return F.cross_entropy(z, y, reduction="sum")


def _other_max(z, y):
    mask = F.one_hot(y, z.shape[1]).bool()
    return z.masked_fill(mask, float("-inf")).max(dim=1).values


def loss_margin(z, y):
    zy = z.gather(1, y[:, None])[:, 0]
    return (_other_max(z, y) - zy).sum()


def loss_dlr(z, y):
    zy = z.gather(1, y[:, None])[:, 0]
    zs = z.sort(dim=1, descending=True).values
    return (-(zy - _other_max(z, y)) / (zs[:, 0] - zs[:, 2] + 1e-12)).sum()


LOSSES = {"ce": loss_ce, "margin": loss_margin, "dlr": loss_dlr}


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------


def set_determinism(seed):
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def randomize_norms(model, calib_shape):
    """Non-trivial BatchNorm running statistics and non-identity affine norm parameters.

    Norm weights ~ U(0.5, 1.5), biases ~ N(0, 0.1). BatchNorm running stats: first calibrated on a random
    batch (U[0,1] inputs; BN layers in train mode with momentum=None, so running stats = batch stats, layer by
    layer), then perturbed: running_mean += U(0, 0.5) * std (random positive shift), running_var *= U(0.5, 2)
    (random positive factor). Calibration keeps the ReLUs after each BatchNorm alive: with default init the
    activations shrink layer by layer, and raw random stats (e.g. mean U(0.05, 0.5)) kill every unit."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.uniform_(0.5, 1.5)
                if getattr(m, "bias", None) is not None:
                    m.bias.normal_(0.0, 0.1)
        if bns:
            model.eval()
            for m in bns:
                m.reset_running_stats()
                m.momentum = None
                m.train()
            model.logits(torch.rand([64] + calib_shape))
            for m in bns:
                m.eval()
                m.momentum = 0.1
                std = m.running_var.sqrt()
                m.running_mean.add_(torch.empty_like(std).uniform_(0.0, 0.5) * std)
                m.running_var.mul_(torch.empty_like(std).uniform_(0.5, 2.0))
                m.num_batches_tracked.fill_(100)
    model.eval()


def set_submodule(root, path, module):
    parent = root
    parts = path.split(".")
    for p in parts[:-1]:
        parent = getattr(parent, p)
    setattr(parent, parts[-1], module)


def fused_copy(model):
    """A copy of the model with each (conv, bn) pair in model.fuse_pairs() folded the way the exporter does."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for conv_name, bn_name in model.fuse_pairs():
        conv = fused.get_submodule(conv_name)
        bn = fused.get_submodule(bn_name)
        set_submodule(fused, conv_name, fuse_conv_bn_eval(conv, bn))
        set_submodule(fused, bn_name, nn.Identity())
    return fused


def input_grads(model, x_np, y_np, dtype):
    m = copy.deepcopy(model).to(dtype).eval()
    y = torch.from_numpy(y_np)
    grads = {}
    for name, fn in LOSSES.items():
        x = torch.tensor(x_np, dtype=dtype, requires_grad=True)
        (g,) = torch.autograd.grad(fn(m.logits(x), y), x)
        grads[name] = g.detach().numpy()
    return grads


def param_grads(model, x_np, y_np, dtype):
    m = copy.deepcopy(model).to(dtype).eval()
    names, params = zip(*[(n, p) for n, p in m.named_parameters() if p.requires_grad])
    x = torch.tensor(x_np, dtype=dtype)
    loss = F.cross_entropy(m.logits(x), torch.from_numpy(y_np), reduction="mean")
    grads = torch.autograd.grad(loss, params)
    return {n: g.detach().numpy() for n, g in zip(names, grads)}


def max_rel(a, b):
    """max |a - b| / max |b| (scale-relative error)."""
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def export(model, x, path, opset, training):
    torch.onnx.export(
        model, (torch.from_numpy(x),), path,
        export_params=True, opset_version=opset, do_constant_folding=False, training=training,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
        keep_initializers_as_inputs=False,
    )


def find_unique(arr, candidates, exact):
    """Names among candidates (name -> float32 array) whose values equal arr (exactly, or allclose)."""
    hits = []
    for n, v in candidates.items():
        if v.shape != arr.shape:
            continue
        if (np.array_equal(v, arr) if exact else np.allclose(v, arr, rtol=1e-4, atol=1e-6)):
            hits.append(n)
    return hits


def map_initializers(onnx_model, model, fused):
    """Map ONNX float initializers to torch parameters of the model (by name and identical values, else by
    identical values) or of the folded copy (by close values). Returns (mapping, unmapped initializers,
    unmapped torch parameters)."""
    inits = {i.name: numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
    orig = {n: p.detach().numpy() for n, p in model.named_parameters() if p.requires_grad}
    fz = {n: p.detach().numpy() for n, p in fused.named_parameters()} if fused is not None else {}
    buffers = {n: b.detach().numpy() for n, b in model.named_buffers() if b.dtype.is_floating_point}
    mapping, unmapped = {}, []
    for name, arr in inits.items():
        if arr.dtype != np.float32:
            continue
        if name in orig and orig[name].shape == arr.shape and np.array_equal(orig[name], arr):
            mapping[name] = ("model", name)
            continue
        hits = [h for h in find_unique(arr, orig, True) if h not in {t for _, t in mapping.values()}]
        if len(hits) == 1:
            mapping[name] = ("model", hits[0])
            continue
        if fused is not None:
            folded_convs = tuple(conv + "." for conv, _ in model.fuse_pairs())
            fhits = [h for h in find_unique(arr, fz, False) if h.startswith(folded_convs)]
            if len(fhits) == 1:
                mapping[name] = ("folded", fhits[0])
                continue
        if name in buffers or find_unique(arr, buffers, True):
            unmapped.append({"initializer": name, "reason": "non-trainable buffer (e.g. BatchNorm running stats)"})
        else:
            unmapped.append({"initializer": name, "reason": "no matching trainable parameter"})
    used = {t for src, t in mapping.values() if src == "model"}
    skipped = [n for n in orig if n not in used]
    return mapping, unmapped, skipped


def histogram(onnx_model):
    return dict(sorted(Counter(n.op_type for n in onnx_model.graph.node).items()))


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def check_zoo_details(onnx_model):
    """Beyond op types: a dilated Conv, a padded MaxPool, the AveragePool attributes, a stepped Slice."""
    nodes = onnx_model.graph.node
    consts = {}
    for n in nodes:
        if n.op_type == "Constant":
            v = attr(n, "value")
            if v is not None:
                consts[n.output[0]] = numpy_helper.to_array(v)
    for i in onnx_model.graph.initializer:
        consts[i.name] = numpy_helper.to_array(i)
    found = {
        "dilatedConv": any(n.op_type == "Conv" and list(attr(n, "dilations", [1, 1])) == [2, 2] for n in nodes),
        "paddedMaxPool": any(n.op_type == "MaxPool" and any(attr(n, "pads", [0])) for n in nodes),
        "avgPoolCeilNoPadCount": any(n.op_type == "AveragePool" and attr(n, "ceil_mode", 0) == 1
                                     and attr(n, "count_include_pad", 0) == 0 and any(attr(n, "pads", [0]))
                                     for n in nodes),
        "steppedSlice": any(n.op_type == "Slice" and len(n.input) >= 5 and n.input[4] in consts
                            and np.any(consts[n.input[4]] == 2) for n in nodes),
        "convTransposeOutputPadding": any(n.op_type == "ConvTranspose" and any(attr(n, "output_padding", [0]))
                                          for n in nodes),
    }
    missing = [k for k, v in found.items() if not v]
    if missing:
        raise SystemExit(f"zoo: export lacks {missing}")
    return found


def make_labels(out, rng, classes):
    """Half of the examples get their predicted class (correct), the other half a random other class, but
    never the third-ranked one: with y = 3rd largest logit, DLR = (z(1) - z(3)) / (z(1) - z(3)) == 1 and its
    gradient vanishes identically, which would make grad_dlr a useless check for that example."""
    pred = out.argmax(axis=1)
    third = np.argsort(-out, axis=1)[:, 2]
    correct_idx = set(rng.permutation(BATCH)[: BATCH // 2].tolist())
    y = np.empty(BATCH, dtype=np.int64)
    for i in range(BATCH):
        if i in correct_idx:
            y[i] = pred[i]
        else:
            others = [c for c in range(classes) if c != pred[i] and c != third[i]]
            y[i] = others[rng.integers(len(others))]
    return y, pred


def build_fixture(spec, index, out_root):
    name = spec["name"]
    seed = BASE_SEED + 1000 * index
    set_determinism(seed)
    rng = np.random.default_rng(seed)
    model = spec["cls"]()
    randomize_norms(model, spec["shape"])
    model.eval()

    folder = os.path.join(out_root, name)
    os.makedirs(folder, exist_ok=True)
    x = rng.uniform(0.0, 1.0, size=[BATCH] + spec["shape"]).astype(np.float32)
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy().astype(np.float32)
        logits32 = model.logits(torch.from_numpy(x)).numpy()
    assert out.shape == (BATCH, spec["classes"]), out.shape
    if float(logits32.std(axis=0).max()) < 1e-3:
        raise SystemExit(f"{name}: logits barely depend on the input: {logits32}")
    y, pred = make_labels(logits32, rng, spec["classes"])

    path = os.path.join(folder, "model.onnx")
    export(model, x, path, spec["opset"], spec["training"])
    onnx_model = onnx.load(path)
    onnx.checker.check_model(onnx_model, full_check=True)
    hist = histogram(onnx_model)
    assert [i.name for i in onnx_model.graph.input] == ["input"]
    assert [o.name for o in onnx_model.graph.output] == ["output"]
    assert onnx_model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert onnx_model.opset_import[0].version == spec["opset"]

    # Input gradients: float64 reference, float32 for comparison.
    g64 = input_grads(model, x, y, torch.float64)
    g32 = input_grads(model, x, y, torch.float32)
    for lname, g in g64.items():
        norms = np.sqrt((g.reshape(BATCH, -1) ** 2).sum(axis=1))
        if not np.all(norms > 1e-8):
            raise SystemExit(f"{name}: grad_{lname} vanishes for some examples: {norms}")
        np.save(os.path.join(folder, f"grad_{lname}.npy"), g.astype(np.float32))

    # Parameter gradients, keyed by ONNX initializer names.
    fused = fused_copy(model) if spec["training"] == TM.EVAL and hasattr(model, "fuse_pairs") else None
    mapping, unmapped_inits, skipped = map_initializers(onnx_model, model, fused)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
    if fused is not None:
        with torch.no_grad():  # make the folded copy hold exactly the exported values
            fparams = dict(fused.named_parameters())
            for oname, (src, tname) in mapping.items():
                if src == "folded":
                    fparams[tname].copy_(torch.from_numpy(np.array(inits[oname])))
            fold_out_diff = float((fused(torch.from_numpy(x)) - model(torch.from_numpy(x))).abs().max())
    pg64 = param_grads(model, x, y, torch.float64)
    pg32 = param_grads(model, x, y, torch.float32)
    fg64 = param_grads(fused, x, y, torch.float64) if fused is not None else {}
    fg32 = param_grads(fused, x, y, torch.float32) if fused is not None else {}
    pgrads, prel = {}, {}
    for oname, (src, tname) in sorted(mapping.items()):
        ref, f32 = (pg64, pg32) if src == "model" else (fg64, fg32)
        assert ref[tname].shape == inits[oname].shape
        pgrads[oname] = ref[tname].astype(np.float32)
        prel[oname] = max_rel(f32[tname], ref[tname])
    np.savez(os.path.join(folder, "params_grad.npz"), **pgrads)

    np.save(os.path.join(folder, "x.npy"), x)
    np.save(os.path.join(folder, "y.npy"), y)
    np.save(os.path.join(folder, "out.npy"), out)

    with torch.no_grad():
        out64 = copy.deepcopy(model).double()(torch.from_numpy(x).double()).numpy()
    folded_params = {}
    if fused is not None:
        for conv_name, bn_name in model.fuse_pairs():
            folded_params[conv_name] = sorted(
                [n for n in skipped if n.startswith(conv_name + ".") or n.startswith(bn_name + ".")])
    notes = list(spec["notes"])
    notes.append("Reference gradients: autograd on a float64 copy (model.double(), x as float64), stored as "
                 "float32. gradFloat32VsFloat64 records max|g32 - g64| / max|g64| of float32 autograd.")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        notes.append("BatchNorm running stats: calibrated on a random batch, then running_mean shifted by a random "
                     "positive U(0, 0.5)*std and running_var scaled by a random positive U(0.5, 2) "
                     "(see randomize_norms); weights U(0.5, 1.5), biases N(0, 0.1).")
    if skipped and fused is None:
        notes.append("Parameters without an ONNX initializer: " + ", ".join(skipped))
    meta = {
        "name": name,
        "opset": spec["opset"],
        "outputKind": spec["kind"],
        "numClasses": spec["classes"],
        "inputShape": ["N"] + spec["shape"],
        "exampleShape": spec["shape"],
        "batch": BATCH,
        "inputBounds": [0, 1],
        "notes": notes,
        "opHistogram": hist,
        "opTypes": sorted(hist),
        "exportTraining": "PRESERVE" if spec["training"] == TM.PRESERVE else "EVAL",
        "lossInput": ("input of the final Softmax node (logits before Softmax)" if spec["kind"] == "probs"
                      else "model output"),
        "losses": {
            "grad_ce.npy": "d/dx sum_i CE(z_i, y_i) = sum_i (logsumexp(z_i) - z_iy)",
            "grad_margin.npy": "d/dx sum_i (max_{j!=y} z_ij - z_iy), unclipped",
            "grad_dlr.npy": "d/dx sum_i -(z_iy - max_{j!=y} z_ij) / (z_i(1) - z_i(3) + 1e-12), z_(k) k-th largest; "
                            "the denominator is differentiated too",
            "params_grad.npz": "d/dtheta mean_i CE(z_i, y_i), keyed by ONNX initializer name",
        },
        "referenceDtype": "float64 (cast to float32)",
        "gradFloat32VsFloat64": {k: max_rel(g32[k], g64[k]) for k in g64},
        "paramGradFloat32VsFloat64": prel,
        "outFloat32VsFloat64": float(np.max(np.abs(out - out64))),
        "gradNonzeroFraction": {k: float(np.mean(g != 0)) for k, g in g64.items()},
        "labels": y.tolist(),
        "predicted": pred.tolist(),
        "correct": (pred == y).tolist(),
        "paramsGradMap": {o: (t if s == "model" else f"folded:{t}") for o, (s, t) in sorted(mapping.items())},
        "initializersWithoutGrad": unmapped_inits,
        "skippedParams": [] if fused is not None else skipped,
        "seed": seed,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }
    if fused is not None:
        meta["foldedParams"] = folded_params
        meta["foldedVsUnfoldedOutMaxAbs"] = fold_out_diff
        meta["skippedParams"] = [n for n in skipped if not any(n in v for v in folded_params.values())]
    if name == "zoo":
        missing = [op for op in ZOO_REQUIRED_OPS if op not in hist]
        if missing:
            raise SystemExit(f"zoo: export lacks op types {missing}; histogram {hist}")
        meta["requiredOps"] = ZOO_REQUIRED_OPS
        meta["opDetails"] = check_zoo_details(onnx_model)
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return meta, folder


def folder_size(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "fixtures", "torch"))
    ap.add_argument("--only", default="", help="comma-separated model names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    only = set(filter(None, args.only.split(",")))
    total = 0
    for index, spec in enumerate(MODELS):
        if only and spec["name"] not in only:
            continue
        meta, folder = build_fixture(spec, index, args.out)
        # load back and check
        onnx.checker.check_model(onnx.load(os.path.join(folder, "model.onnx")), full_check=True)
        with np.load(os.path.join(folder, "params_grad.npz")) as z:
            n_pg = len(z.files)
        size = folder_size(folder)
        total += size
        print(f"== {meta['name']}: opset {meta['opset']}, {meta['outputKind']}, {meta['numClasses']} classes, "
              f"{size / 1024:.1f} KiB, params_grad {n_pg} entries, correct {sum(meta['correct'])}/{BATCH}")
        print("   ops: " + ", ".join(f"{k}:{v}" for k, v in meta["opHistogram"].items()))
        print("   grad f32 vs f64: " + ", ".join(f"{k} {v:.1e}" for k, v in meta["gradFloat32VsFloat64"].items()))
        if meta["skippedParams"]:
            print("   skipped params: " + ", ".join(meta["skippedParams"]))
    print(f"total {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
