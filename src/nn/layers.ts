/**
 * Layers that emit ONNX. A layer owns named float tensors (trainable parameters and, for BatchNorm, running-statistic
 * buffers), knows its output shape, and appends its nodes to a GraphBuilder. Parameters are referenced in the graph
 * by their own names (`conv1.weight`): the Network decides whether those names are initializers (export) or graph
 * inputs (training, so one onnxruntime session serves every step).
 */
import { BulwarkError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { sizeOf } from '../core/tensor.js';
import { floatAttr, type GraphBuilder } from '../onnx/builder.js';

/** `train`: batch statistics, dropout masks; `infer`: running statistics, no dropout (the exported model). */
export type Mode = 'train' | 'infer';

/** A named float tensor owned by a layer. */
export interface Param {
  /** Dotted name, also the ONNX value name: `conv1.weight`. */
  readonly name: string;
  readonly shape: number[];
  /** The values, updated in place by optimizers and running-statistic updates. */
  readonly data: Float32Array;
}

/** A layer: parameters, shape propagation over per-example shapes ([C,H,W] or [F]) and ONNX emission. */
export interface Layer {
  readonly name: string;
  /** Trainable parameters, in a fixed order. */
  params(): Param[];
  /** Non-trainable state saved with the model (BatchNorm running mean/var). */
  buffers(): Param[];
  /** Direct sub-layers (containers), for walking the tree. */
  children(): Layer[];
  /**
   * Checks the per-example input shape and returns the output shape. Called once by the Network before emit.
   * @throws BulwarkError BULWARK_E_ARCH when the layer cannot take this shape
   */
  outShape(inShape: readonly number[]): number[];
  /** Fills parameters and buffers with their initial values, drawing from `rng` in a fixed order. */
  init(rng: Rng): void;
  /** Appends the layer's nodes reading value `input`; returns the output value name. */
  emit(b: GraphBuilder, input: string, mode: Mode): string;
}

function param(name: string, shape: number[]): Param {
  return { name, shape, data: new Float32Array(sizeOf(shape)) };
}

function archError(layer: string, message: string): never {
  throw new BulwarkError('BULWARK_E_ARCH', `${layer}: ${message}`);
}

function positiveInt(layer: string, what: string, v: number, min = 1): number {
  if (!Number.isSafeInteger(v) || v < min) archError(layer, `${what} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** PyTorch's default Conv/Linear init: kaiming_uniform_(a=√5) on weights = U(±1/√fan_in), biases U(±1/√fan_in). */
function kaimingUniform(rng: Rng, p: Param, fanIn: number): void {
  const bound = 1 / Math.sqrt(fanIn);
  rng.fillUniform(p.data, -bound, bound);
}

abstract class Leaf implements Layer {
  constructor(readonly name: string) {}
  params(): Param[] {
    return [];
  }
  buffers(): Param[] {
    return [];
  }
  children(): Layer[] {
    return [];
  }
  init(_rng: Rng): void {}
  abstract outShape(inShape: readonly number[]): number[];
  abstract emit(b: GraphBuilder, input: string, mode: Mode): string;
}

/** Fully connected layer y = x·Wᵀ + b, weight stored [out, in] (Gemm transB=1, as PyTorch's Linear). Input [F]. */
export class Dense extends Leaf {
  readonly weight: Param;
  readonly bias: Param | undefined;
  /**
   * @param name layer name, e.g. `fc1` (params fc1.weight [out,in], fc1.bias [out])
   * @param inFeatures input features
   * @param outFeatures output features
   * @param opts bias (default true)
   */
  constructor(name: string, readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean } = {}) {
    super(name);
    positiveInt(name, 'in features', inFeatures);
    positiveInt(name, 'out features', outFeatures);
    this.weight = param(`${name}.weight`, [outFeatures, inFeatures]);
    this.bias = opts.bias === false ? undefined : param(`${name}.bias`, [outFeatures]);
  }
  override params(): Param[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
  override init(rng: Rng): void {
    kaimingUniform(rng, this.weight, this.inFeatures);
    if (this.bias) kaimingUniform(rng, this.bias, this.inFeatures);
  }
  outShape(s: readonly number[]): number[] {
    if (s.length !== 1 || s[0] !== this.inFeatures) archError(this.name, `Dense(${this.inFeatures}, ${this.outFeatures}) needs [${this.inFeatures}] features per example, got [${s.join(',')}] (add a flatten before it, or fix the in features)`);
    return [this.outFeatures];
  }
  emit(b: GraphBuilder, x: string): string {
    const inputs = this.bias ? [x, this.weight.name, this.bias.name] : [x, this.weight.name];
    return b.node('Gemm', inputs, { transB: 1 }, this.name);
  }
}

/** Options of Conv2d, with PyTorch's defaults. */
export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

/** 2-D convolution over [C,H,W], weight [out, in/groups, k, k], square kernel, symmetric zero padding. */
export class Conv2d extends Leaf {
  readonly weight: Param;
  readonly bias: Param | undefined;
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly groups: number;
  /**
   * @param name layer name, e.g. `conv1`
   * @param inChannels input channels
   * @param outChannels output channels
   * @param kernel kernel size (square)
   * @param opts stride, padding, dilation, groups (default 1, 0, 1, 1) and bias (default true)
   */
  constructor(name: string, readonly inChannels: number, readonly outChannels: number, readonly kernel: number, opts: Conv2dOptions = {}) {
    super(name);
    positiveInt(name, 'in channels', inChannels);
    positiveInt(name, 'out channels', outChannels);
    positiveInt(name, 'kernel size', kernel);
    this.stride = positiveInt(name, 'stride', opts.stride ?? 1);
    this.padding = positiveInt(name, 'padding', opts.padding ?? 0, 0);
    this.dilation = positiveInt(name, 'dilation', opts.dilation ?? 1);
    this.groups = positiveInt(name, 'groups', opts.groups ?? 1);
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) archError(name, `groups ${this.groups} must divide both in channels ${inChannels} and out channels ${outChannels}`);
    this.weight = param(`${name}.weight`, [outChannels, inChannels / this.groups, kernel, kernel]);
    this.bias = opts.bias === false ? undefined : param(`${name}.bias`, [outChannels]);
  }
  override params(): Param[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
  override init(rng: Rng): void {
    const fanIn = (this.inChannels / this.groups) * this.kernel * this.kernel;
    kaimingUniform(rng, this.weight, fanIn);
    if (this.bias) kaimingUniform(rng, this.bias, fanIn);
  }
  outShape(s: readonly number[]): number[] {
    if (s.length !== 3 || s[0] !== this.inChannels) archError(this.name, `Conv2d(${this.inChannels}, ${this.outChannels}) needs [${this.inChannels},H,W] per example, got [${s.join(',')}]`);
    const out = s.slice(1).map((len) => Math.floor((len + 2 * this.padding - this.dilation * (this.kernel - 1) - 1) / this.stride) + 1);
    if (out.some((o) => o < 1)) archError(this.name, `a ${this.kernel}x${this.kernel} kernel does not fit the ${s[1]}x${s[2]} input`);
    return [this.outChannels, ...out];
  }
  emit(b: GraphBuilder, x: string): string {
    const p = this.padding;
    const inputs = this.bias ? [x, this.weight.name, this.bias.name] : [x, this.weight.name];
    const attrs = { kernel_shape: [this.kernel, this.kernel], strides: [this.stride, this.stride], pads: [p, p, p, p], dilations: [this.dilation, this.dilation], group: this.groups };
    return b.node('Conv', inputs, attrs, this.name);
  }
}

function poolOut(layer: string, s: readonly number[], k: number, stride: number, pad: number): number[] {
  if (s.length !== 3) archError(layer, `pooling needs [C,H,W] per example, got [${s.join(',')}]`);
  if (2 * pad > k) archError(layer, `padding ${pad} must be at most half the kernel ${k}`);
  const out = s.slice(1).map((len) => Math.floor((len + 2 * pad - k) / stride) + 1);
  if (out.some((o) => o < 1)) archError(layer, `a ${k}x${k} window does not fit the ${s[1]}x${s[2]} input`);
  return [s[0]!, ...out];
}

/** k×k pooling with PyTorch's defaults (stride = k, no padding); subclasses name the ONNX op and its extra attributes. */
abstract class Pool2d extends Leaf {
  readonly stride: number;
  readonly padding: number;
  protected abstract readonly op: string;
  protected readonly extra: Record<string, number> = {};
  constructor(name: string, readonly kernel: number, opts: { stride?: number; padding?: number } = {}) {
    super(name);
    positiveInt(name, 'kernel size', kernel);
    this.stride = positiveInt(name, 'stride', opts.stride ?? kernel);
    this.padding = positiveInt(name, 'padding', opts.padding ?? 0, 0);
  }
  outShape(s: readonly number[]): number[] {
    return poolOut(this.name, s, this.kernel, this.stride, this.padding);
  }
  emit(b: GraphBuilder, x: string): string {
    const p = this.padding;
    return b.node(this.op, [x], { kernel_shape: [this.kernel, this.kernel], strides: [this.stride, this.stride], pads: [p, p, p, p], ...this.extra }, this.name);
  }
}

/** Max pooling over k×k windows (stride defaults to k, as in PyTorch). */
export class MaxPool2d extends Pool2d {
  protected readonly op = 'MaxPool';
}

/** Average pooling over k×k windows (stride defaults to k; padded cells count, as PyTorch's count_include_pad=True). */
export class AvgPool2d extends Pool2d {
  protected readonly op = 'AveragePool';
  protected override readonly extra = { count_include_pad: 1 };
}

/** Global average pooling: [C,H,W] -> [C,1,1] (ONNX GlobalAveragePool; follow with Flatten for a Dense). */
export class GlobalAvgPool extends Leaf {
  outShape(s: readonly number[]): number[] {
    if (s.length !== 3) archError(this.name, `global pooling needs [C,H,W] per example, got [${s.join(',')}]`);
    return [s[0]!, 1, 1];
  }
  emit(b: GraphBuilder, x: string): string {
    return b.node('GlobalAveragePool', [x], {}, this.name);
  }
}

/**
 * Batch normalization over channels: [C,H,W] (BatchNorm2d) or [C] (BatchNorm1d), eps 1e-5, momentum 0.1.
 * Training graphs normalize with the batch statistics spelled as ReduceMean/Sqrt/Div (so the autodiff differentiates
 * through them) and output the batch mean and biased variance, from which {@link BatchNorm.updateRunning} updates the
 * running statistics in TypeScript; inference graphs use one BatchNormalization op with the running statistics.
 */
export class BatchNorm extends Leaf {
  readonly weight: Param;
  readonly bias: Param;
  readonly runningMean: Param;
  readonly runningVar: Param;
  readonly eps = 1e-5;
  readonly momentum = 0.1;
  private rank = 0;
  private spatial = 1;
  /**
   * @param name layer name, e.g. `bn1` (params bn1.weight, bn1.bias; buffers bn1.running_mean, bn1.running_var)
   * @param channels number of channels (features for 1-d)
   */
  constructor(name: string, readonly channels: number) {
    super(name);
    positiveInt(name, 'channels', channels);
    this.weight = param(`${name}.weight`, [channels]);
    this.bias = param(`${name}.bias`, [channels]);
    this.runningMean = param(`${name}.running_mean`, [channels]);
    this.runningVar = param(`${name}.running_var`, [channels]);
  }
  override params(): Param[] {
    return [this.weight, this.bias];
  }
  override buffers(): Param[] {
    return [this.runningMean, this.runningVar];
  }
  override init(): void {
    this.weight.data.fill(1);
    this.bias.data.fill(0);
    this.runningMean.data.fill(0);
    this.runningVar.data.fill(1);
  }
  /** Name of the training graph's batch-mean output [C]. */
  get meanOutput(): string {
    return `${this.name}.batch_mean`;
  }
  /** Name of the training graph's biased batch-variance output [C]. */
  get varOutput(): string {
    return `${this.name}.batch_var`;
  }
  outShape(s: readonly number[]): number[] {
    if ((s.length !== 1 && s.length !== 3) || s[0] !== this.channels) archError(this.name, `BatchNorm(${this.channels}) needs [${this.channels}] or [${this.channels},H,W] per example, got [${s.join(',')}]`);
    this.rank = s.length + 1;
    this.spatial = sizeOf(s.slice(1));
    return [...s];
  }
  /** Values per channel that a batch of `batchSize` examples averages over (for the unbiased running variance). */
  countPerChannel(batchSize: number): number {
    return batchSize * this.spatial;
  }
  /** PyTorch's update: running = (1 − m)·running + m·batch, with the unbiased batch variance. */
  updateRunning(mean: ArrayLike<number>, biasedVar: ArrayLike<number>, count: number): void {
    const m = this.momentum;
    const unbias = count > 1 ? count / (count - 1) : 1;
    for (let c = 0; c < this.channels; c++) {
      this.runningMean.data[c] = (1 - m) * this.runningMean.data[c]! + m * mean[c]!;
      this.runningVar.data[c] = (1 - m) * this.runningVar.data[c]! + m * biasedVar[c]! * unbias;
    }
  }
  emit(b: GraphBuilder, x: string, mode: Mode): string {
    if (this.rank === 0) archError(this.name, 'outShape must run before emit');
    if (mode === 'infer') {
      return b.node('BatchNormalization', [x, this.weight.name, this.bias.name, this.runningMean.name, this.runningVar.name], { epsilon: floatAttr(this.eps), momentum: floatAttr(1 - this.momentum) }, this.name);
    }
    const axes = [0, ...Array.from({ length: this.rank - 2 }, (_, i) => i + 2)];
    const perChannel = b.int64([1, this.channels, ...new Array(this.rank - 2).fill(1)]);
    const mean = b.reduce('ReduceMean', x, axes, true);
    const xc = b.sub(x, mean);
    const variance = b.reduce('ReduceMean', b.mul(xc, xc), axes, true);
    const xhat = b.div(xc, b.node('Sqrt', [b.add(variance, b.scalar(this.eps))]));
    const y = b.add(b.mul(xhat, b.reshape(this.weight.name, perChannel)), b.reshape(this.bias.name, perChannel));
    const flat = b.int64([this.channels]);
    b.node('Reshape', [mean, flat], {}, `${this.name}/batch_mean`, this.meanOutput);
    b.node('Reshape', [variance, flat], {}, `${this.name}/batch_var`, this.varOutput);
    b.graph.outputs.push({ name: this.meanOutput, elemType: b.floatType, shape: [this.channels] }, { name: this.varOutput, elemType: b.floatType, shape: [this.channels] });
    return b.node('Identity', [y], {}, this.name);
  }
}

/**
 * Dropout with probability p. Training graphs multiply by a mask fed as an extra graph input (`<name>.mask`, values 0
 * or 1/(1−p), drawn by the trainer's seeded Rng); inference graphs emit nothing.
 */
export class Dropout extends Leaf {
  private shape: number[] | undefined;
  constructor(name: string, readonly p: number) {
    super(name);
    if (!(p >= 0 && p < 1)) archError(name, `dropout probability must be in [0, 1), got ${p}`);
  }
  /** Name of the training graph's mask input [N, ...]. */
  get maskInput(): string {
    return `${this.name}.mask`;
  }
  /** Per-example shape of the mask (the layer's input shape). */
  get maskShape(): number[] {
    if (!this.shape) archError(this.name, 'outShape must run before the mask shape is known');
    return this.shape;
  }
  outShape(s: readonly number[]): number[] {
    this.shape = [...s];
    return [...s];
  }
  /** Fills a mask for `batchSize` examples: 0 with probability p, else 1/(1−p). */
  makeMask(batchSize: number, rng: Rng): Float32Array {
    const mask = new Float32Array(batchSize * sizeOf(this.maskShape));
    const keep = 1 / (1 - this.p);
    for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < this.p ? 0 : keep;
    return mask;
  }
  emit(b: GraphBuilder, x: string, mode: Mode): string {
    if (mode === 'infer') return x;
    b.graph.inputs.push({ name: this.maskInput, elemType: b.floatType, shape: ['N', ...this.maskShape] });
    return b.node('Mul', [x, this.maskInput], {}, this.name);
  }
}

/** An element-wise activation that keeps the shape. */
abstract class Activation extends Leaf {
  outShape(s: readonly number[]): number[] {
    return [...s];
  }
}

export class ReLU extends Activation {
  emit(b: GraphBuilder, x: string): string {
    return b.node('Relu', [x], {}, this.name);
  }
}

export class LeakyReLU extends Activation {
  constructor(name: string, readonly alpha = 0.01) {
    super(name);
  }
  emit(b: GraphBuilder, x: string): string {
    return b.node('LeakyRelu', [x], { alpha: floatAttr(this.alpha) }, this.name);
  }
}

export class Tanh extends Activation {
  emit(b: GraphBuilder, x: string): string {
    return b.node('Tanh', [x], {}, this.name);
  }
}

export class Sigmoid extends Activation {
  emit(b: GraphBuilder, x: string): string {
    return b.node('Sigmoid', [x], {}, this.name);
  }
}

/** Exact GELU, x·Φ(x) = ½x(1 + erf(x/√2)), spelled with Erf (the Gelu op needs opset 20). */
export class GELU extends Activation {
  emit(b: GraphBuilder, x: string): string {
    const erf = b.node('Erf', [b.mul(x, b.scalar(Math.SQRT1_2))], {}, `${this.name}/erf`);
    return b.node('Mul', [b.mul(x, b.scalar(0.5)), b.add(erf, b.scalar(1))], {}, this.name);
  }
}

/** [C,H,W] -> [C·H·W]. */
export class Flatten extends Leaf {
  outShape(s: readonly number[]): number[] {
    return [sizeOf(s)];
  }
  emit(b: GraphBuilder, x: string): string {
    return b.node('Flatten', [x], { axis: 1 }, this.name);
  }
}

/** Layers applied in order. */
export class Sequential implements Layer {
  readonly layers: Layer[];
  constructor(readonly name: string, layers: Layer[]) {
    this.layers = [...layers];
    const seen = new Set<string>();
    for (const l of this.layers) {
      if (seen.has(l.name)) archError(name || 'sequential', `two layers are named ${l.name}`);
      seen.add(l.name);
    }
  }
  params(): Param[] {
    return this.layers.flatMap((l) => l.params());
  }
  buffers(): Param[] {
    return this.layers.flatMap((l) => l.buffers());
  }
  children(): Layer[] {
    return this.layers;
  }
  init(rng: Rng): void {
    for (const l of this.layers) l.init(rng);
  }
  outShape(s: readonly number[]): number[] {
    return this.layers.reduce<number[]>((shape, l) => l.outShape(shape), [...s]);
  }
  emit(b: GraphBuilder, x: string, mode: Mode): string {
    return this.layers.reduce((v, l) => l.emit(b, v, mode), x);
  }
}

/**
 * A basic residual block (He et al. 2016): conv3x3(stride) → BN → ReLU → conv3x3 → BN, plus a shortcut, then ReLU.
 * The shortcut is the identity, or a strided 1x1 conv + BN when the channels or the stride change.
 */
export class ResidualBlock implements Layer {
  readonly body: Sequential;
  readonly shortcut: Sequential | undefined;
  /**
   * @param name block name, e.g. `res1` (params res1.conv1.weight, res1.bn1.weight, ..., res1.shortcut.conv.weight)
   * @param inChannels input channels
   * @param outChannels output channels
   * @param stride stride of the first conv and of the shortcut (default 1)
   */
  constructor(readonly name: string, readonly inChannels: number, readonly outChannels: number, readonly stride = 1) {
    this.body = new Sequential(name, [
      new Conv2d(`${name}.conv1`, inChannels, outChannels, 3, { stride, padding: 1, bias: false }),
      new BatchNorm(`${name}.bn1`, outChannels),
      new ReLU(`${name}.relu1`),
      new Conv2d(`${name}.conv2`, outChannels, outChannels, 3, { padding: 1, bias: false }),
      new BatchNorm(`${name}.bn2`, outChannels),
    ]);
    this.shortcut = inChannels !== outChannels || stride !== 1
      ? new Sequential(`${name}.shortcut`, [new Conv2d(`${name}.shortcut.conv`, inChannels, outChannels, 1, { stride, bias: false }), new BatchNorm(`${name}.shortcut.bn`, outChannels)])
      : undefined;
  }
  params(): Param[] {
    return [...this.body.params(), ...(this.shortcut?.params() ?? [])];
  }
  buffers(): Param[] {
    return [...this.body.buffers(), ...(this.shortcut?.buffers() ?? [])];
  }
  children(): Layer[] {
    return this.shortcut ? [this.body, this.shortcut] : [this.body];
  }
  init(rng: Rng): void {
    this.body.init(rng);
    this.shortcut?.init(rng);
  }
  outShape(s: readonly number[]): number[] {
    const out = this.body.outShape(s);
    const short = this.shortcut ? this.shortcut.outShape(s) : [...s];
    if (out.join(',') !== short.join(',')) archError(this.name, `body output [${out}] and shortcut output [${short}] differ`);
    return out;
  }
  emit(b: GraphBuilder, x: string, mode: Mode): string {
    const y = this.body.emit(b, x, mode);
    const s = this.shortcut ? this.shortcut.emit(b, x, mode) : x;
    return b.node('Relu', [b.add(y, s)], {}, `${this.name}.relu2`);
  }
}

/** Every layer of a tree, depth first (containers included). */
export function walkLayers(root: Layer): Layer[] {
  return [root, ...root.children().flatMap(walkLayers)];
}
