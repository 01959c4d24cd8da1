/**
 * Built-in architectures and a small spec language for custom ones (`bulwark train --arch`).
 */
import { BulwarkError } from '../core/errors.js';
import {
  AvgPool2d,
  BatchNorm,
  Conv2d,
  Dense,
  Dropout,
  Flatten,
  GELU,
  GlobalAvgPool,
  LeakyReLU,
  MaxPool2d,
  ReLU,
  ResidualBlock,
  Sequential,
  Sigmoid,
  Tanh,
  type Layer,
} from './layers.js';
import { Network } from './network.js';

/** Options of {@link buildArch}. */
export interface ArchOptions {
  /** Per-example input shape; default [1, 28, 28] (MNIST). */
  inputShape?: number[];
  /** Classes of built-in architectures (specs set theirs with the last dense layer); default 10. */
  numClasses?: number;
  /** Weight-init seed; default 0. */
  seed?: number;
}

interface Builtin {
  summary: string;
  build(inputShape: number[], numClasses: number): Layer[];
}

/** The flattened feature count after `layers` on `inputShape`. */
function featuresAfter(layers: Layer[], inputShape: number[]): number {
  return new Sequential('probe', layers).outShape(inputShape).reduce((a, d) => a * d, 1);
}

function cnnSmall(withBn: boolean) {
  return (s: number[], k: number): Layer[] => {
    const c = s[0]!;
    const features = [
      new Conv2d('conv1', c, 32, 3, { padding: 1 }),
      ...(withBn ? [new BatchNorm('bn1', 32)] : []),
      new ReLU('relu1'),
      new MaxPool2d('pool1', 2),
      new Conv2d('conv2', 32, 64, 3, { padding: 1 }),
      ...(withBn ? [new BatchNorm('bn2', 64)] : []),
      new ReLU('relu2'),
      new MaxPool2d('pool2', 2),
      new Flatten('flatten'),
    ];
    return [...features, new Dense('fc1', featuresAfter(features, s), 128), new ReLU('relu3'), new Dense('fc2', 128, k)];
  };
}

/** The built-in architectures by name. */
export const ARCHITECTURES: Record<string, Builtin> = {
  mlp: {
    summary: 'flatten, fc1 784-256, ReLU, fc2 256-128, ReLU, fc3 128-K',
    build: (s, k) => {
      const f = s.reduce((a, d) => a * d, 1);
      return [new Flatten('flatten'), new Dense('fc1', f, 256), new ReLU('relu1'), new Dense('fc2', 256, 128), new ReLU('relu2'), new Dense('fc3', 128, k)];
    },
  },
  'cnn-small': {
    summary: 'conv1 32x3x3 p1, ReLU, maxpool 2, conv2 64x3x3 p1, ReLU, maxpool 2, flatten, fc1 3136-128, ReLU, fc2 128-K',
    build: cnnSmall(false),
  },
  'cnn-bn': {
    summary: 'cnn-small with BatchNorm (bn1, bn2) after each convolution',
    build: cnnSmall(true),
  },
  'resnet-mini': {
    summary: 'stem conv 16x3x3 + BN + ReLU, residual blocks 16, 32/2, 64/2, global average pool, fc 64-K',
    build: (s, k) => [
      new Conv2d('stem', s[0]!, 16, 3, { padding: 1, bias: false }),
      new BatchNorm('stem_bn', 16),
      new ReLU('stem_relu'),
      new ResidualBlock('res1', 16, 16),
      new ResidualBlock('res2', 16, 32, 2),
      new ResidualBlock('res3', 32, 64, 2),
      new GlobalAvgPool('gap'),
      new Flatten('flatten'),
      new Dense('fc', 64, k),
    ],
  },
};

/** The grammar of architecture specs, shown in help and in every spec error. */
export const ARCH_SPEC_GRAMMAR = `An architecture spec is a comma-separated list of layers, applied in order:
  conv:<out>x<k>[s<stride>][p<pad>][d<dilation>][g<groups>]   2-D convolution, e.g. conv:32x3p1, conv:64x3s2p1
  dense:<out>                      fully connected (input must be flat: put flatten before it)
  maxpool:<k>[s<stride>][p<pad>]   max pooling (stride defaults to k)
  avgpool:<k>[s<stride>][p<pad>]   average pooling (stride defaults to k)
  gap                              global average pooling to [C,1,1]
  res:<out>[s<stride>]             residual block (two 3x3 convs + BN; 1x1 projection when the shape changes)
  bn                               batch normalization (2-d after convs, 1-d after dense)
  dropout:<p>                      dropout with probability p in [0, 1)
  relu | leakyrelu[:<alpha>] | tanh | sigmoid | gelu | flatten
The last layer must be dense:<K>, giving the K >= 2 class logits. Layers are named by kind and position
(conv1, conv2, fc1, bn1, ...). Example: conv:32x3p1,relu,maxpool:2,flatten,dense:10`;

function specError(spec: string, message: string): never {
  throw new BulwarkError('BULWARK_E_ARCH', `architecture spec ${JSON.stringify(spec)}: ${message}`, { hint: ARCH_SPEC_GRAMMAR });
}

const NAME_PREFIX: Record<string, string> = { dense: 'fc', fc: 'fc', linear: 'fc', conv: 'conv', maxpool: 'pool', avgpool: 'pool', bn: 'bn', dropout: 'drop', res: 'res', gap: 'gap', flatten: 'flatten' };

/**
 * Parses an architecture spec into layers, inferring in-channels and in-features from `inputShape`.
 * @param spec e.g. "conv:32x3p1,relu,maxpool:2,flatten,dense:10" (see {@link ARCH_SPEC_GRAMMAR})
 * @param inputShape per-example input shape
 * @returns the layers
 * @throws BulwarkError BULWARK_E_ARCH naming the bad token, with the grammar as hint
 */
export function parseArchSpec(spec: string, inputShape: number[]): Layer[] {
  const tokens = spec.split(',').map((t) => t.trim().toLowerCase());
  if (tokens.some((t) => t === '')) specError(spec, 'empty layer (two commas in a row, or a trailing comma)');
  const layers: Layer[] = [];
  const counts = new Map<string, number>();
  let shape = [...inputShape];
  for (const token of tokens) {
    const m = /^([a-z]+)(?::(.*))?$/.exec(token);
    if (!m) specError(spec, `cannot read layer ${JSON.stringify(token)}`);
    const [, kind, arg] = m as unknown as [string, string, string | undefined];
    const n = (counts.get(NAME_PREFIX[kind] ?? kind) ?? 0) + 1;
    counts.set(NAME_PREFIX[kind] ?? kind, n);
    const name = `${NAME_PREFIX[kind] ?? kind}${n}`;
    const needArg = (re: RegExp, form: string): RegExpExecArray => {
      const r = arg === undefined ? null : re.exec(arg);
      if (!r) specError(spec, `layer ${JSON.stringify(token)} must read ${form}`);
      return r;
    };
    const num = (s: string | undefined, def: number) => (s === undefined ? def : Number(s));
    const noArg = () => {
      if (arg !== undefined) specError(spec, `layer ${kind} takes no argument, got ${JSON.stringify(token)}`);
    };
    let layer: Layer;
    switch (kind) {
      case 'conv': {
        const r = needArg(/^(\d+)x(\d+)(?:s(\d+))?(?:p(\d+))?(?:d(\d+))?(?:g(\d+))?$/, 'conv:<out>x<k>[s<stride>][p<pad>][d<dilation>][g<groups>]');
        if (shape.length !== 3) specError(spec, `${token} needs a [C,H,W] input, got [${shape.join(',')}]`);
        layer = new Conv2d(name, shape[0]!, Number(r[1]), Number(r[2]), { stride: num(r[3], 1), padding: num(r[4], 0), dilation: num(r[5], 1), groups: num(r[6], 1) });
        break;
      }
      case 'dense':
      case 'fc':
      case 'linear': {
        const r = needArg(/^(\d+)$/, 'dense:<out>');
        if (shape.length !== 1) specError(spec, `${token} needs a flat input, got [${shape.join(',')}] (put flatten before it)`);
        layer = new Dense(name, shape[0]!, Number(r[1]));
        break;
      }
      case 'maxpool':
      case 'avgpool': {
        const r = needArg(/^(\d+)(?:s(\d+))?(?:p(\d+))?$/, `${kind}:<k>[s<stride>][p<pad>]`);
        const k = Number(r[1]);
        const opts = { stride: num(r[2], k), padding: num(r[3], 0) };
        layer = kind === 'maxpool' ? new MaxPool2d(name, k, opts) : new AvgPool2d(name, k, opts);
        break;
      }
      case 'res': {
        const r = needArg(/^(\d+)(?:s(\d+))?$/, 'res:<out>[s<stride>]');
        if (shape.length !== 3) specError(spec, `${token} needs a [C,H,W] input, got [${shape.join(',')}]`);
        layer = new ResidualBlock(name, shape[0]!, Number(r[1]), num(r[2], 1));
        break;
      }
      case 'bn':
        noArg();
        layer = new BatchNorm(name, shape[0]!);
        break;
      case 'dropout': {
        const r = needArg(/^(0?\.\d+|0)$/, 'dropout:<p> with p in [0, 1)');
        layer = new Dropout(name, Number(r[1]));
        break;
      }
      case 'leakyrelu': {
        const alpha = arg === undefined ? 0.01 : Number(needArg(/^(\d*\.?\d+(?:e-?\d+)?)$/, 'leakyrelu[:<alpha>]')[1]);
        layer = new LeakyReLU(name, alpha);
        break;
      }
      case 'gap':
        noArg();
        layer = new GlobalAvgPool(name);
        break;
      case 'flatten':
        noArg();
        layer = new Flatten(name);
        break;
      case 'relu':
      case 'tanh':
      case 'sigmoid':
      case 'gelu': {
        noArg();
        const Ctor = { relu: ReLU, tanh: Tanh, sigmoid: Sigmoid, gelu: GELU }[kind];
        layer = new Ctor(name);
        break;
      }
      default:
        specError(spec, `unknown layer ${JSON.stringify(kind)}`);
    }
    try {
      shape = layer.outShape(shape);
    } catch (e) {
      if (e instanceof BulwarkError) specError(spec, e.message);
      throw e;
    }
    layers.push(layer);
  }
  // The grammar's rule, enforced: a spec ending elsewhere (flatten,relu) would train a parameter-free "classifier"
  // with one class per input feature.
  const last = tokens.at(-1)!;
  const k = /^(?:dense|fc|linear):(\d+)$/.exec(last)?.[1];
  if (k === undefined) specError(spec, `the last layer must be dense:<K> (the K class logits), got ${JSON.stringify(last)}`);
  if (Number(k) < 2) specError(spec, `the last layer ${last} gives ${k} class; a classifier needs dense:<K> with K >= 2`);
  return layers;
}

/**
 * Builds a network from a built-in name (mlp, cnn-small, cnn-bn, resnet-mini) or an architecture spec.
 * @param arch a name of {@link ARCHITECTURES} or a spec (see {@link ARCH_SPEC_GRAMMAR})
 * @param opts input shape, classes (built-ins), init seed
 * @returns the initialized network
 * @throws BulwarkError BULWARK_E_ARCH for an unknown name or a bad spec
 * @example const net = buildArch('cnn-small', { seed: 1 }); net.saveOnnx('cnn.onnx');
 */
export function buildArch(arch: string, opts: ArchOptions = {}): Network {
  const inputShape = opts.inputShape ?? [1, 28, 28];
  const seed = opts.seed ?? 0;
  const builtin = ARCHITECTURES[arch];
  if (builtin) return new Network(new Sequential(arch, builtin.build(inputShape, opts.numClasses ?? 10)), inputShape, { seed, arch });
  if (!/[,:]/.test(arch) && !/^(gap|flatten|bn|relu|tanh|sigmoid|gelu|leakyrelu)$/.test(arch.trim())) {
    throw new BulwarkError('BULWARK_E_ARCH', `unknown architecture ${JSON.stringify(arch)}; built-ins are ${Object.keys(ARCHITECTURES).join(', ')}, or pass a spec`, { hint: ARCH_SPEC_GRAMMAR });
  }
  const layers = parseArchSpec(arch, inputShape);
  try {
    return new Network(new Sequential('spec', layers), inputShape, { seed, arch });
  } catch (e) {
    if (e instanceof BulwarkError) specError(arch, e.message);
    throw e;
  }
}
