/**
 * A Network: a layer tree over a fixed per-example input shape, ending in class logits. It builds the ONNX graphs
 * Bulwark trains and exports: the inference graph (opset 17, weights as initializers, input "input" [N,...], output
 * "output" [N,K]) and the same graph with weights as graph inputs, in inference or training mode.
 */
import { BulwarkError } from '../core/errors.js';
import { writeFileAtomic } from '../core/fsio.js';
import { Rng } from '../core/rng.js';
import { sizeOf, type Tensor } from '../core/tensor.js';
import { writeNpz } from '../data/index.js';
import { GraphBuilder } from '../onnx/builder.js';
import { ELEM, emptyGraph, writeModelBytes, type Graph } from '../onnx/ir.js';
import { walkLayers, type Layer, type Mode, type Param } from './layers.js';

/** Name of the input of every graph a Network builds. */
export const INPUT_NAME = 'input';
/** Name of the logits output of every graph a Network builds. */
export const OUTPUT_NAME = 'output';
/** Opset of exported (inference) graphs. */
export const EXPORT_OPSET = 17;
/** Opset of training graphs (ReduceMean takes its axes as an input from 18 on). */
export const TRAIN_OPSET = 18;

/** Options of a Network. */
export interface NetworkOptions {
  /** Seed of the weight initialization; default 0. */
  seed?: number;
  /** The architecture name or spec it was built from, recorded in the ONNX metadata. */
  arch?: string;
}

/** Options of {@link Network.graph}. */
export interface GraphOptions {
  mode: Mode;
  /** Weights (and, in inference mode, running statistics) as graph inputs instead of initializers. */
  weightsAsInputs?: boolean;
  /** Default opset: 17 for inference graphs, 18 for training graphs. */
  opset?: number;
}

/**
 * A classifier built from layers.
 * @example
 * const net = new Network(new Sequential('', [new Flatten('flatten'), new Dense('fc', 784, 10)]), [1, 28, 28]);
 * fs.writeFileSync('linear.onnx', net.toOnnx());
 */
export class Network {
  readonly root: Layer;
  /** Per-example input shape, e.g. [1, 28, 28]. */
  readonly inputShape: number[];
  readonly numClasses: number;
  readonly arch: string;

  /**
   * @param root the layer tree (usually a Sequential)
   * @param inputShape per-example input shape
   * @param opts init seed and the arch label
   * @throws BulwarkError BULWARK_E_ARCH when the layers do not fit the shape or do not end in [K] logits
   */
  constructor(root: Layer, inputShape: number[], opts: NetworkOptions = {}) {
    this.root = root;
    this.inputShape = [...inputShape];
    const out = root.outShape(this.inputShape);
    if (out.length !== 1 || out[0]! < 1) {
      throw new BulwarkError('BULWARK_E_ARCH', `the network must end in [K] class logits, but its output is [${out.join(',')}] per example`, { hint: 'End the architecture with flatten and a dense layer.' });
    }
    this.numClasses = out[0]!;
    this.arch = opts.arch ?? root.name;
    const names = new Set<string>();
    for (const p of this.state()) {
      if (names.has(p.name)) throw new BulwarkError('BULWARK_E_ARCH', `two parameters are named ${p.name}; give the layers distinct names`);
      names.add(p.name);
    }
    root.init(new Rng(opts.seed ?? 0));
  }

  /** Trainable parameters in a fixed order. */
  params(): Param[] {
    return this.root.params();
  }

  /** Non-trainable state (BatchNorm running statistics). */
  buffers(): Param[] {
    return this.root.buffers();
  }

  /** Parameters then buffers: everything an exported model holds. */
  state(): Param[] {
    return [...this.params(), ...this.buffers()];
  }

  /** Every layer of the tree, depth first. */
  layers(): Layer[] {
    return walkLayers(this.root);
  }

  /** Number of trainable scalars. */
  parameterCount(): number {
    return this.params().reduce((a, p) => a + p.data.length, 0);
  }

  /**
   * Builds a graph of the network.
   * @param opts mode, whether weights are inputs, and the opset
   * @returns a fresh Graph; initializers hold copies of the current weights
   */
  graph(opts: GraphOptions): Graph {
    const opset = opts.opset ?? (opts.mode === 'train' ? TRAIN_OPSET : EXPORT_OPSET);
    const g = emptyGraph({
      name: 'bulwark_network',
      opset,
      inputs: [{ name: INPUT_NAME, elemType: ELEM.FLOAT, shape: ['N', ...this.inputShape] }],
      metadata: { 'bulwark.arch': this.arch, 'bulwark.input_shape': JSON.stringify(this.inputShape) },
    });
    // Training graphs normalize with batch statistics, so running statistics are not part of them.
    const tensors = opts.mode === 'train' ? this.params() : this.state();
    for (const p of tensors) {
      if (opts.weightsAsInputs) g.inputs.push({ name: p.name, elemType: ELEM.FLOAT, shape: [...p.shape] });
      else g.initializers.set(p.name, { dataType: ELEM.FLOAT, dims: [...p.shape], data: new Float32Array(p.data) });
    }
    const b = new GraphBuilder(g);
    const logits = this.root.emit(b, INPUT_NAME, opts.mode);
    b.node('Identity', [logits], {}, 'logits', OUTPUT_NAME);
    g.outputs.unshift({ name: OUTPUT_NAME, elemType: ELEM.FLOAT, shape: ['N', this.numClasses] });
    return g;
  }

  /** The exportable inference graph: opset 17, weights as initializers, running statistics in BatchNormalization. */
  inferenceGraph(): Graph {
    return this.graph({ mode: 'infer' });
  }

  /** The inference graph as ONNX bytes (loadable by loadModel and any ONNX runtime). */
  toOnnx(): Uint8Array {
    return writeModelBytes(this.inferenceGraph());
  }

  /**
   * Writes the inference model atomically.
   * @param file the .onnx path
   */
  saveOnnx(file: string): void {
    writeFileAtomic(file, this.toOnnx());
  }

  /** Copies of the parameters and buffers, by name, in PyTorch layout (a state dict). */
  stateDict(): Record<string, Tensor<Float32Array>> {
    return Object.fromEntries(this.state().map((p) => [p.name, { data: new Float32Array(p.data), shape: [...p.shape], dtype: 'float32' as const }]));
  }

  /**
   * Loads values by name (e.g. from readNpz); every parameter and buffer must be present with its exact shape.
   * @throws BulwarkError BULWARK_E_MODEL naming a missing or misshapen tensor
   */
  loadStateDict(tensors: Record<string, Tensor>): void {
    for (const p of this.state()) {
      const t = tensors[p.name];
      if (!t) throw new BulwarkError('BULWARK_E_MODEL', `the weights have no tensor ${p.name} (they hold ${Object.keys(tensors).join(', ') || 'nothing'})`);
      if (t.shape.join(',') !== p.shape.join(',') || sizeOf(t.shape) !== p.data.length) {
        throw new BulwarkError('BULWARK_E_SHAPE', `weight ${p.name} has shape [${t.shape.join(',')}]; the network expects [${p.shape.join(',')}]`);
      }
      p.data.set(Float32Array.from(t.data as ArrayLike<number>));
    }
  }

  /**
   * Writes the weights to an .npz keyed by parameter name (`conv1.weight`, ..., PyTorch layout), the format
   * bench/torch_bench.py --weights reads.
   * @param file the .npz path
   */
  saveNpz(file: string): void {
    writeNpz(file, this.stateDict());
  }
}
