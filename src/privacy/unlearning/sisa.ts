/**
 * SISA training for machine unlearning (Bourtoule, Chandrasekaran, Choquette-Choo, Jia, Travers, Zhang, Lie,
 * Papernot, "Machine Unlearning", IEEE S&P 2021, https://arxiv.org/abs/1912.03817): the training set is split into
 * S disjoint shards, each shard into R slices; shard model s is trained incrementally on slices 1..r with a
 * checkpoint after each slice; the ensemble answers by majority vote of the shard models. Forgetting an example
 * retrains only its shard, from the checkpoint saved before the earliest slice that held a forgotten example.
 *
 * On disk (one folder): manifest.json (shards, slices and the ids every checkpoint was trained on, the data spec,
 * the forget history) and shard-<s>/slice-<r>.g<generation>.npz checkpoints. Every file is written atomically and
 * new checkpoints get a new generation before the manifest points at them, so a crash leaves the old state whole.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulwarkError } from '../../core/errors.js';
import { makeDirs, readFileChecked, writeFileAtomic } from '../../core/fsio.js';
import { Rng } from '../../core/rng.js';
import { argmaxRows, gatherRows, type Float32Tensor } from '../../core/tensor.js';
import { encodeNpz, readNpz, type Dataset } from '../../data/index.js';
import { buildArch, EvalSession, train, type Network } from '../../nn/index.js';
import type { Model } from '../../runtime/model.js';

/** Options of {@link SisaEnsemble.train}. */
export interface SisaOptions {
  /** Number of shards S (disjoint, one model each); default 4. */
  shards?: number;
  /** Slices R per shard (a checkpoint after each); default 4. */
  slices?: number;
  /** Architecture of the shard models (built-in name or nn spec); default 'mlp'. */
  arch?: string;
  /** Epochs of training after adding each slice (on the union of slices so far); default 3. */
  epochsPerSlice?: number;
  /** Adam learning rate; default 3e-3. */
  lr?: number;
  /** Mini-batch size; default 64. */
  batchSize?: number;
  /** Seed of the shard assignment, inits and example order; default 0. */
  seed?: number;
  /** onnxruntime threads. */
  threads?: number;
  /** The data spec the dataset was loaded from (recorded, so `bulwark unlearn --forget` can reload it). */
  dataSpec?: string;
}

/** One shard as recorded in the manifest. */
export interface ShardRecord {
  /** Example ids (dataset rows) of each slice, forgotten ids removed. */
  slices: number[][];
  /** Checkpoint file (relative to the folder) after each slice. */
  checkpoints: string[];
  /** The sorted ids each checkpoint's model was trained on (union of its slices at training time). */
  trainedOn: number[][];
  /** Seconds spent training this shard in the last (re)training, per slice. */
  sliceSeconds: number[];
}

/** What one forget call did. */
export interface ForgetRecord {
  at: string;
  ids: number[];
  /** Shards retrained and the slice each restarted from (0 = from scratch). */
  retrained: { shard: number; fromSlice: number }[];
  seconds: number;
}

/** manifest.json of a SISA folder. */
export interface SisaManifest {
  format: 'bulwark.sisa/1';
  arch: string;
  inputShape: number[];
  numClasses: number;
  data: { spec?: string; n: number };
  options: { shards: number; slices: number; epochsPerSlice: number; lr: number; batchSize: number; seed: number };
  generation: number;
  shards: ShardRecord[];
  forgotten: number[];
  history: ForgetRecord[];
  /** Seconds of the initial training of the whole ensemble. */
  trainSeconds: number;
}

const MANIFEST = 'manifest.json';

function sisaError(dir: string, msg: string): never {
  throw new BulwarkError('BULWARK_E_SISA_STATE', `SISA folder ${dir}: ${msg}`);
}

/**
 * A SISA ensemble persisted in a folder.
 * @example
 * const ens = await SisaEnsemble.train(await loadData('mnist:train[0:4000]'), 'sisa/', { shards: 4, slices: 4 });
 * const report = await ens.forget([12, 345], data);
 */
export class SisaEnsemble {
  private constructor(
    readonly dir: string,
    public manifest: SisaManifest,
  ) {}

  /**
   * Trains S shard models with R checkpointed slices each and writes the folder.
   * @param data labelled training data; example id = row index
   * @param dir the folder (created; must not already hold a manifest)
   * @param opts shards, slices, architecture and training options
   * @returns the ensemble
   * @throws BulwarkError BULWARK_E_ARG (counts), BULWARK_E_LABELS, BULWARK_E_SISA_STATE (folder already used)
   */
  static async train(data: Dataset, dir: string, opts: SisaOptions = {}): Promise<SisaEnsemble> {
    const t0 = performance.now();
    const S = opts.shards ?? 4;
    const R = opts.slices ?? 4;
    const n = data.x.shape[0]!;
    if (!Number.isInteger(S) || S < 1) throw new BulwarkError('BULWARK_E_ARG', `shards must be a positive integer, got ${S}`);
    if (!Number.isInteger(R) || R < 1) throw new BulwarkError('BULWARK_E_ARG', `slices must be a positive integer, got ${R}`);
    if (S * R > n) throw new BulwarkError('BULWARK_E_ARG', `${S} shards x ${R} slices need at least ${S * R} examples; the data has ${n}`);
    if (!data.y) throw new BulwarkError('BULWARK_E_LABELS', `${data.name} has no labels; SISA training needs them`);
    if (fs.existsSync(path.join(dir, MANIFEST))) sisaError(dir, 'already holds a SISA ensemble (manifest.json)');
    const numClasses = data.numClasses ?? Math.max(...data.y) + 1;
    const seed = opts.seed ?? 0;
    const perm = new Rng(seed).permutation(n);
    const shards: ShardRecord[] = [];
    for (let s = 0; s < S; s++) {
      const ids = Array.from(perm.filter((_, i) => i % S === s)).sort((a, b) => a - b);
      const shuffled = new Rng(seed + 1 + s).shuffle([...ids]);
      const slices = Array.from({ length: R }, (_, r) => shuffled.slice(Math.floor((r * ids.length) / R), Math.floor(((r + 1) * ids.length) / R)).sort((a, b) => a - b));
      shards.push({ slices, checkpoints: [], trainedOn: [], sliceSeconds: [] });
    }
    const manifest: SisaManifest = {
      format: 'bulwark.sisa/1',
      arch: opts.arch ?? 'mlp',
      inputShape: data.x.shape.slice(1),
      numClasses,
      data: { ...(opts.dataSpec ? { spec: opts.dataSpec } : {}), n },
      options: { shards: S, slices: R, epochsPerSlice: opts.epochsPerSlice ?? 3, lr: opts.lr ?? 3e-3, batchSize: opts.batchSize ?? 64, seed },
      generation: 0,
      shards,
      forgotten: [],
      history: [],
      trainSeconds: 0,
    };
    makeDirs(dir);
    const ens = new SisaEnsemble(dir, manifest);
    ens.threads = opts.threads;
    for (let s = 0; s < S; s++) await ens.trainShard(s, 0, data);
    manifest.trainSeconds = (performance.now() - t0) / 1000;
    ens.save();
    return ens;
  }

  /**
   * Opens a SISA folder.
   * @throws BulwarkError BULWARK_E_SISA_STATE when the manifest is missing, malformed or points at missing checkpoints
   */
  static open(dir: string): SisaEnsemble {
    const file = path.join(dir, MANIFEST);
    if (!fs.existsSync(file)) sisaError(dir, 'has no manifest.json (train one with `bulwark unlearn --train`)');
    let m: SisaManifest;
    try {
      m = JSON.parse(readFileChecked(file, 'SISA manifest').toString('utf8')) as SisaManifest;
    } catch (e) {
      if (e instanceof BulwarkError) throw e;
      return sisaError(dir, `manifest.json is not valid JSON (${(e as Error).message})`);
    }
    if (m.format !== 'bulwark.sisa/1' || !Array.isArray(m.shards) || m.shards.length !== m.options?.shards) sisaError(dir, 'manifest.json is not a bulwark.sisa/1 manifest');
    for (const [s, sh] of m.shards.entries()) {
      if (sh.checkpoints.length !== m.options.slices) sisaError(dir, `shard ${s} has ${sh.checkpoints.length} checkpoints for ${m.options.slices} slices`);
      for (const c of sh.checkpoints) if (!fs.existsSync(path.join(dir, c))) sisaError(dir, `checkpoint ${c} is missing`);
    }
    return new SisaEnsemble(dir, m);
  }

  /** onnxruntime threads for (re)training. */
  threads: number | undefined;

  /** The ids the shard's current (last-slice) model was trained on. */
  trainedIds(shard: number): number[] {
    return this.manifest.shards[shard]!.trainedOn.at(-1) ?? [];
  }

  /** The shard holding an example id, or -1. */
  shardOf(id: number): number {
    return this.manifest.shards.findIndex((sh) => sh.slices.some((sl) => sl.includes(id)));
  }

  /** The shard's current model, loaded from its last checkpoint. */
  shardNetwork(shard: number, slice = this.manifest.options.slices - 1): Network {
    const net = this.freshNet(shard);
    net.loadStateDict(readNpz(path.join(this.dir, this.manifest.shards[shard]!.checkpoints[slice]!)));
    return net;
  }

  /**
   * Removes examples from the ensemble: each affected shard restarts from the checkpoint before the earliest slice
   * that held one of them and retrains the following slices without them. Unknown or already forgotten ids are
   * ignored (reported). The folder is updated atomically.
   * @param ids example ids (rows of the training data)
   * @param data the same training data the ensemble was trained on
   * @returns the record of what was retrained, plus the ids that were not in any shard
   * @throws BulwarkError BULWARK_E_SISA_STATE when the data does not match the recorded size
   */
  async forget(ids: number[], data: Dataset): Promise<ForgetRecord & { ignored: number[] }> {
    const t0 = performance.now();
    const m = this.manifest;
    if (data.x.shape[0] !== m.data.n) sisaError(this.dir, `was trained on ${m.data.n} examples; the data given to forget has ${data.x.shape[0]}`);
    const want = new Set(ids);
    const ignored: number[] = [];
    const restart = new Map<number, number>();
    for (const id of want) {
      const s = this.shardOf(id);
      if (s < 0) {
        ignored.push(id);
        continue;
      }
      const r = m.shards[s]!.slices.findIndex((sl) => sl.includes(id));
      restart.set(s, Math.min(restart.get(s) ?? Infinity, r));
    }
    for (const sh of m.shards) sh.slices = sh.slices.map((sl) => sl.filter((id) => !want.has(id)));
    m.generation++;
    const old: string[] = [];
    const retrained = [...restart.entries()].sort((a, b) => a[0] - b[0]).map(([shard, fromSlice]) => ({ shard, fromSlice }));
    for (const { shard, fromSlice } of retrained) {
      old.push(...m.shards[shard]!.checkpoints.slice(fromSlice));
      await this.trainShard(shard, fromSlice, data);
    }
    const forgotten = ids.filter((id) => !ignored.includes(id));
    m.forgotten = [...new Set([...m.forgotten, ...forgotten])].sort((a, b) => a - b);
    const rec: ForgetRecord = { at: new Date().toISOString(), ids: [...new Set(forgotten)].sort((a, b) => a - b), retrained, seconds: (performance.now() - t0) / 1000 };
    m.history.push(rec);
    this.save();
    for (const f of old) fs.rmSync(path.join(this.dir, f), { force: true });
    return { ...rec, ignored };
  }

  /**
   * Vote fractions [N, K] of the shard models (each votes its top-1 class).
   * @param x inputs [N, ...inputShape]
   */
  async predict(x: Float32Tensor): Promise<Float32Tensor> {
    const n = x.shape[0]!;
    const k = this.manifest.numClasses;
    const votes = new Float32Array(n * k);
    const S = this.manifest.options.shards;
    for (let s = 0; s < S; s++) {
      const net = this.shardNetwork(s);
      const ev = await EvalSession.create(net, this.threads === undefined ? {} : { threads: this.threads });
      try {
        const top = argmaxRows({ data: await ev.logits(x), shape: [n, k], dtype: 'float32' });
        for (let i = 0; i < n; i++) votes[i * k + top[i]!]! += 1 / S;
      } finally {
        await ev.release();
      }
    }
    return { data: votes, shape: [n, k], dtype: 'float32' };
  }

  /**
   * Per-example cross-entropy of one shard model on labelled examples (for checking that forgotten examples
   * look like non-members).
   * @param shard the shard
   * @param x inputs
   * @param y labels
   */
  async shardLoss(shard: number, x: Float32Tensor, y: ArrayLike<number>): Promise<Float32Array> {
    const net = this.shardNetwork(shard);
    const ev = await EvalSession.create(net);
    try {
      const k = net.numClasses;
      const z = await ev.logits(x);
      return Float32Array.from({ length: y.length }, (_, i) => {
        const row = z.subarray(i * k, (i + 1) * k);
        const mx = Math.max(...row);
        return mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0)) - row[y[i]!]!;
      });
    } finally {
      await ev.release();
    }
  }

  /** The ensemble as a black-box Model (vote fractions as 'probs'). */
  asModel(): Model {
    const self = this;
    const m: Model = {
      inputShape: [-1, ...this.manifest.inputShape],
      numClasses: this.manifest.numClasses,
      bounds: [0, 1],
      outputKind: 'probs',
      queries: 0,
      async predict(x) {
        m.queries += x.shape[0]!;
        return self.predict(x);
      },
    };
    return m;
  }

  private freshNet(shard: number): Network {
    const m = this.manifest;
    return buildArch(m.arch, { inputShape: m.inputShape, numClasses: m.numClasses, seed: (m.options.seed * 7919 + shard) >>> 0 });
  }

  /** (Re)trains slices fromSlice..R-1 of a shard, starting from the checkpoint of slice fromSlice-1. */
  private async trainShard(shard: number, fromSlice: number, data: Dataset): Promise<void> {
    const m = this.manifest;
    const sh = m.shards[shard]!;
    const net = fromSlice === 0 ? this.freshNet(shard) : this.shardNetwork(shard, fromSlice - 1);
    for (let r = fromSlice; r < m.options.slices; r++) {
      const t0 = performance.now();
      const ids = sh.slices.slice(0, r + 1).flat().sort((a, b) => a - b);
      if (ids.length > 0) {
        const sub: Dataset = { name: `${data.name} shard ${shard} slices 0..${r}`, x: gatherRows(data.x, ids), y: Int32Array.from(ids, (i) => data.y![i]!), numClasses: m.numClasses };
        await train(net, sub, {
          epochs: m.options.epochsPerSlice,
          lr: m.options.lr,
          batchSize: m.options.batchSize,
          schedule: { kind: 'constant' },
          seed: (m.options.seed + 1000 * shard + r) >>> 0,
          progress: false,
          ...(this.threads === undefined ? {} : { threads: this.threads }),
        });
      }
      const file = `shard-${shard}/slice-${r}.g${m.generation}.npz`;
      writeFileAtomic(path.join(this.dir, file), encodeNpz(net.stateDict()));
      sh.checkpoints[r] = file;
      sh.trainedOn[r] = ids;
      sh.sliceSeconds[r] = (performance.now() - t0) / 1000;
    }
  }

  private save(): void {
    writeFileAtomic(path.join(this.dir, MANIFEST), JSON.stringify(this.manifest));
  }
}
