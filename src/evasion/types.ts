/**
 * Shared types of evasion attacks (DESIGN.md section 4). An attack is a function
 * `(model, x, y, options) => Promise<AttackResult>`; variants (norm, targeted, loss, optimizer) are option values.
 * Every attack is defined once as an {@link AttackDefinition} (its strict option schema plus a `craft` function)
 * and run through the shared runner (`runner.ts`), which validates options, checks the model and the data,
 * projects what the attack returns onto the threat model and recomputes success on the model.
 */
import type { Rng } from '../core/rng.js';
import type { Float32Tensor } from '../core/tensor.js';
import type { LossAndGradient, Model } from '../runtime/model.js';
import type { HeadSpec } from '../autodiff/heads.js';
import type { OptionSchema } from './options.js';

export type { Model, LossAndGradient, HeadSpec };

/**
 * Norm of a threat model: `'inf'` (L∞), `2` (L2), `1` (L1), or `0` (L0 over pixel positions: the number of
 * spatial positions whose value changes in any channel; patches use it).
 */
export type Norm = 'inf' | 2 | 1 | 0;

/** The set of inputs an attacker may reach from x: `{x' in bounds : ‖x' − x‖_norm ≤ eps}`. */
export interface ThreatModel {
  norm: Norm;
  /** Radius; `Infinity` for minimum-norm attacks run without a budget (then only the bounds constrain). */
  eps: number;
}

/**
 * What counts as success.
 * - `untargeted`: the prediction differs from the true label.
 * - `targeted`: the prediction equals the given target class (one per example, each ≠ the label).
 * - `targeted-topk`: as APGD-T (Croce & Hein 2020, arXiv:2003.01690): the attack is run once per target class,
 *   the k most likely classes other than the label, on the examples not yet broken; success is misclassification.
 */
export type Criterion =
  | { kind: 'untargeted' }
  | { kind: 'targeted'; targets: ArrayLike<number> }
  | { kind: 'targeted-topk'; k: number };

/** A model that has gradients (white-box). */
export type GradientModel = Model & { lossAndGradient: NonNullable<Model['lossAndGradient']> };

/** Everything an attack's `craft` receives. Options are already validated and defaulted. */
export interface AttackContext<O> {
  /** The model; a {@link GradientModel} when the definition is `whiteBox`. */
  model: Model;
  /** Clean inputs of the examples to attack, [n, ...]. */
  x: Float32Tensor;
  /** True labels [n]. */
  y: Int32Array;
  /** Target classes [n] when the attack is run targeted, else undefined (untargeted). */
  targets: Int32Array | undefined;
  /** The threat model the runner will project onto (from the options). */
  threat: ThreatModel;
  /** Valid input range of the model. */
  bounds: [number, number];
  /** The validated options. */
  options: O;
  /**
   * Seeded generator keyed by (seed, attack, round) only, for attacks whose randomness is shared by the whole batch
   * (universal perturbations, patches). Per-example draws must come from {@link AttackContext.stream}.
   */
  rng: Rng;
  /** Row numbers of these examples in the x the runner was given (what `extras.queriesIndex` reports). */
  index: Int32Array;
  /** Global example index of each row (the runner's `indices` option; default the row's position in the runner's x). */
  ids: Int32Array;
  /**
   * The generator of row `row` for restart `restart` (and sub-stream `sub`), keyed by (seed, attack, round,
   * global index, restart, sub) (`streams.ts`): an example's draws never depend on which other examples share
   * its batch. Each call returns a fresh generator at the start of its stream.
   */
  stream(row: number, restart?: number, sub?: number): Rng;
}

/** What `craft` returns: the adversarial inputs (same shape as x), plus optional attack-specific extras. */
export type CraftOutput = Float32Tensor | { adversarial: Float32Tensor; extras?: Record<string, unknown> };

/**
 * One attack: its name, paper, option schema and algorithm. The runner does everything else.
 * @typeParam O the validated options type (the schema's output)
 */
export interface AttackDefinition<O extends CommonOptions = CommonOptions> {
  /** CLI and report name, e.g. `pgd`, `apgd-ce`, `square`. */
  name: string;
  /** One line for help and docs. */
  summary: string;
  /** The paper(s): `Author Year, link`. */
  paper: string;
  /** Needs `model.lossAndGradient`. */
  whiteBox: boolean;
  /** Norms the attack supports. */
  norms: readonly Norm[];
  /** Whether the attack can aim at given targets (criterion `targeted` and `targeted-topk`). */
  targeted: boolean;
  /**
   * Attacks that need the whole batch at once (universal perturbations) set this: the runner then passes every
   * example, including clean misclassified ones, in one call.
   */
  wholeBatch?: boolean;
  /**
   * Minimum-norm attacks (FAB, HopSkipJump, C&W, DeepFool) return the smallest adversarial input they found whatever
   * the budget: with a finite eps, a row beyond it is projected back like any other (and then usually fails) but does
   * not count as leaving the threat model. Leaving the box still counts.
   */
  minimumNorm?: boolean;
  /** Strict option schema: unknown keys are refused, every default is documented. */
  schema: OptionSchema<O>;
  /** The threat model the options describe, for inputs of `shape` [N, ...]; default `{ norm: options.norm, eps: options.eps }`. */
  threat?(options: O, bounds: [number, number], shape: number[]): ThreatModel;
  /** Crafts adversarial inputs. Need not clip or project: the runner does, and recomputes success itself. */
  craft(ctx: AttackContext<O>): Promise<CraftOutput>;
}

/** Options every attack takes (each attack's schema extends these). */
export interface CommonOptions {
  /** Threat-model norm. */
  norm: Norm;
  /** Threat-model radius (Infinity: unbounded, for minimum-norm attacks). */
  eps: number;
  /** Success criterion; default untargeted. */
  criterion: Criterion;
  /** Seed of every random draw. */
  seed: number;
}

/** Per-example perturbation norms of the projected adversarial inputs. */
export interface PerturbationNorms {
  linf: Float32Array;
  l2: Float32Array;
  l1: Float32Array;
  /** Changed pixel positions (any channel). */
  l0: Float32Array;
}

/** Aggregates of an {@link AttackResult} (what `--json` prints). */
export interface AttackSummary {
  attack: string;
  n: number;
  /** Fraction of examples the model classifies correctly before the attack. */
  cleanAccuracy: number;
  /** Fraction of examples classified correctly after the attack (clean mistakes count as not robust). */
  robustAccuracy: number;
  /** Fraction of the attacked examples (correct before the attack) where the criterion holds after it. */
  successRate: number;
  /** Mean perturbation over successful examples (0 when none). */
  meanPerturbation: { linf: number; l2: number };
  /** Model queries (examples forwarded, gradient calls included) spent by the attack. */
  queries: number;
  /** Wall-clock seconds of the attack (without the runner's checks). */
  seconds: number;
  /** Attacked examples per second. */
  imagesPerSecond: number;
  /** Examples whose raw attack output left the threat model by more than the tolerance (then projected). */
  outOfThreat: number;
  norm: Norm;
  eps: number;
  targeted: boolean;
}

/** The result of an attack, as verified by the runner. */
export interface AttackResult {
  attack: string;
  /** Adversarial inputs [n, ...], projected onto the threat model (bounds ∩ eps-ball). */
  adversarial: Float32Tensor;
  /** Per example: the criterion holds on `adversarial` (recomputed on the model) and the example was attacked. */
  success: Uint8Array;
  /** Per example: the example counts as attacked (classified correctly before the attack and, when targeted, its target differs from its label). Universal attacks perturb every example but count only these. */
  attacked: Uint8Array;
  /** Model predictions on the clean inputs. */
  cleanPredictions: Int32Array;
  /** Model predictions on `adversarial`. */
  predictions: Int32Array;
  /** The labels the attack was run with. */
  labels: Int32Array;
  /** Target classes when targeted (per example), else undefined. */
  targets: Int32Array | undefined;
  /** Per-example norms of adversarial − x. */
  norms: PerturbationNorms;
  /** Per example: the raw output left the threat model beyond the tolerance (an attack bug, or a cheat). */
  outOfThreat: Uint8Array;
  threat: ThreatModel;
  criterion: Criterion['kind'];
  queries: number;
  seconds: number;
  /** Validated options (with defaults) the attack ran with; targets omitted. */
  options: Record<string, unknown>;
  /** Attack-specific outputs (the universal perturbation, the patch, ...). */
  extras: Record<string, unknown>;
  summary: AttackSummary;
}

/** An attack as a function (DESIGN.md section 4). Options are the attack's input options (partial, defaulted). */
export type AttackFn<I = Record<string, unknown>> = (model: Model, x: Float32Tensor, y: ArrayLike<number>, options?: I) => Promise<AttackResult>;
