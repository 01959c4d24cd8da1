/**
 * Attack suites of the robustness evaluation: the AutoAttack ensemble (Croce & Hein 2020,
 * https://arxiv.org/abs/2003.01690) of APGD-CE, APGD-T, FAB-T and Square, sized by a budget.
 */
import { BulwarkError } from '../../core/errors.js';
import type { AttackDefinition, CommonOptions } from '../types.js';
import { apgdCeDefinition, apgdDefinition, apgdDlrDefinition } from '../whitebox/apgd.js';
import { fabDefinition } from '../whitebox/fab.js';
import { squareDefinition } from '../blackbox/square.js';

/** The named budgets of `bulwark evaluate --suite` and `bulwark scan --budget`. */
export type Budget = 'quick' | 'standard' | 'thorough';

/** Every budget name, cheapest first. */
export const BUDGETS: readonly Budget[] = ['quick', 'standard', 'thorough'];

/** The papers the ensemble follows, for reports. */
export const ENSEMBLE_PAPERS = {
  autoattack: 'Croce & Hein 2020, Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks, https://arxiv.org/abs/2003.01690',
  fab: 'Croce & Hein 2020, Minimally distorted adversarial examples with a fast adaptive boundary attack, https://arxiv.org/abs/1907.02044',
  square: 'Andriushchenko et al. 2020, Square Attack, https://arxiv.org/abs/1912.00049',
  masking: 'Athalye, Carlini & Wagner 2018, Obfuscated gradients give a false sense of security, https://arxiv.org/abs/1802.00420',
  checklist: 'Carlini et al. 2019, On evaluating adversarial robustness, https://arxiv.org/abs/1902.06705',
} as const;

/** One attack of the ensemble, as the suite configures it. */
export interface MemberSpec {
  /** Report name: `apgd-ce`, `apgd-t`, `fab-t`, `square`. */
  name: string;
  /** White-box members need gradients; black-box members only predict. */
  kind: 'white-box' | 'black-box';
  /** How many target classes a targeted member tries (top-k other classes), else undefined. */
  targets?: number;
  /** The attack's options other than eps, norm and seed (validated by the attack's own schema). */
  options: Record<string, unknown>;
}

/** How a budget sizes the evaluation. */
export interface SuiteSpec {
  budget: Budget;
  /** Examples evaluated (a seeded sample when the data holds more). */
  examples: number;
  /** The ensemble, in order: each member runs only on the examples every earlier member failed on. */
  members: MemberSpec[];
  /**
   * Robustness curve: eps values as fractions of the main eps, examples per point, and the members run at each
   * point (`all`, or a list of names that is a prefix of the ensemble order, so the main run's point can be reused).
   */
  curve: { fractions: number[]; examples: number; members: 'all' | string[] };
  /** Examples used by the gradient and randomness checks. */
  checkExamples: number;
}

function members(o: { steps: number; restarts: number; targets: number; fabSteps: number; queries: number }): MemberSpec[] {
  return [
    { name: 'apgd-ce', kind: 'white-box', options: { steps: o.steps, restarts: o.restarts } },
    { name: 'apgd-t', kind: 'white-box', targets: o.targets, options: { steps: o.steps, restarts: 1, criterion: { kind: 'targeted-topk', k: o.targets } } },
    { name: 'fab-t', kind: 'white-box', targets: o.targets, options: { steps: o.fabSteps, restarts: 1, criterion: { kind: 'targeted-topk', k: o.targets } } },
    { name: 'square', kind: 'black-box', options: { maxQueries: o.queries, loss: 'margin' } },
  ];
}

/**
 * The budgets. `standard` is AutoAttack's standard version (APGD-CE 100 steps, APGD-T and FAB-T on the top 9
 * other classes, Square 5000 queries); `thorough` adds APGD-CE restarts and doubles Square's queries; `quick`
 * cuts steps, targets and queries for CI. The curves of quick and standard use APGD-CE and APGD-T only.
 */
export const SUITES: Readonly<Record<Budget, SuiteSpec>> = {
  quick: {
    budget: 'quick',
    examples: 100,
    members: members({ steps: 25, restarts: 1, targets: 3, fabSteps: 20, queries: 1000 }),
    curve: { fractions: [1 / 3, 2 / 3, 1], examples: 40, members: ['apgd-ce', 'apgd-t'] },
    checkExamples: 32,
  },
  standard: {
    budget: 'standard',
    examples: 1000,
    members: members({ steps: 100, restarts: 1, targets: 9, fabSteps: 100, queries: 5000 }),
    // On CPU the full ensemble at small eps costs most of a run (FAB-T and Square on nearly every example), so
    // the standard curve uses the two APGD attacks; thorough runs all four at every point.
    curve: { fractions: [0.25, 0.5, 0.75, 1, 1.25], examples: 200, members: ['apgd-ce', 'apgd-t'] },
    checkExamples: 128,
  },
  thorough: {
    budget: 'thorough',
    examples: 10000,
    members: members({ steps: 100, restarts: 5, targets: 9, fabSteps: 100, queries: 10000 }),
    curve: { fractions: [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1, 1.25, 1.5], examples: 1000, members: 'all' },
    checkExamples: 512,
  },
};

/**
 * The suite of a budget name, or the given spec.
 * @throws BulwarkError BULWARK_E_ARG for an unknown budget name
 */
export function resolveSuite(suite: Budget | SuiteSpec | undefined): SuiteSpec {
  if (suite === undefined) return SUITES.standard;
  if (typeof suite === 'object') return suite;
  const s = SUITES[suite as Budget];
  if (!s) throw new BulwarkError('BULWARK_E_ARG', `unknown budget ${JSON.stringify(suite)}; use one of ${BUDGETS.join(', ')}`);
  return s;
}

/**
 * The attack definition and options a member runs with on a model with `numClasses` classes: APGD-T uses the
 * targeted DLR loss, which needs at least 4 classes, and falls back to targeted cross-entropy below that; the
 * number of targets is capped at numClasses − 1 (by the runner).
 */
export function memberAttack(m: MemberSpec, numClasses: number): { definition: AttackDefinition<CommonOptions>; options: Record<string, unknown> } {
  const def = (d: unknown) => d as AttackDefinition<CommonOptions>;
  switch (m.name) {
    case 'apgd-ce':
      return { definition: def(apgdCeDefinition), options: m.options };
    case 'apgd-t':
      if (numClasses > 0 && numClasses < 4) return { definition: def(apgdDefinition), options: { ...m.options, loss: 'ce' } };
      return { definition: def(apgdDlrDefinition), options: m.options };
    case 'fab-t':
      return { definition: def(fabDefinition), options: m.options };
    case 'square':
      return { definition: def(squareDefinition), options: m.options };
    default:
      throw new BulwarkError('BULWARK_E_ARG', `unknown ensemble member ${JSON.stringify(m.name)}; members are apgd-ce, apgd-t, fab-t, square`);
  }
}

/** The paper of a member, for reports. */
export function memberPaper(name: string): string {
  if (name === 'fab-t') return ENSEMBLE_PAPERS.fab;
  if (name === 'square') return ENSEMBLE_PAPERS.square;
  return ENSEMBLE_PAPERS.autoattack;
}
