import { BulwarkError } from '../core/errors.js';
import type { Rule, RuleTable } from './context.js';
import { activationRules } from './rules/activation.js';
import { convRules } from './rules/conv.js';
import { elementwiseRules } from './rules/elementwise.js';
import { matmulRules } from './rules/matmul.js';
import { normRules } from './rules/norm.js';
import { poolRules } from './rules/pool.js';
import { reduceRules } from './rules/reduce.js';
import { shapeRules } from './rules/shape.js';

/**
 * Ops that carry no gradient: shape arithmetic, comparisons, index outputs. The walker stops at them rather than
 * failing, since no float value flows through them to the loss.
 */
export const NO_GRADIENT = new Set([
  'Shape', 'Size', 'Constant', 'ConstantOfShape', 'Range', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual',
  'Not', 'And', 'Or', 'Xor', 'ArgMax', 'ArgMin', 'NonZero', 'OneHot', 'IsNaN', 'IsInf', 'EyeLike', 'RandomNormal',
  'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'BitShift', 'Mod',
]);

/** Ops whose derivative is zero almost everywhere; a gradient through them is reported as masked. */
export const ZERO_GRADIENT = new Set(['Floor', 'Ceil', 'Round', 'Sign']);

/** Builds one table from the per-family tables, refusing an op defined twice. */
export function buildRuleTable(families: Record<string, RuleTable>): Map<string, Rule> {
  const table = new Map<string, Rule>();
  const owner = new Map<string, string>();
  for (const [family, rules] of Object.entries(families)) {
    for (const [op, rule] of Object.entries(rules)) {
      if (table.has(op)) throw new BulwarkError('BULWARK_E_INTERNAL', `gradient rule for ${op} defined in both ${owner.get(op)} and ${family}`);
      if (NO_GRADIENT.has(op)) throw new BulwarkError('BULWARK_E_INTERNAL', `${op} is both a rule (${family}) and a no-gradient op`);
      table.set(op, rule);
      owner.set(op, family);
    }
  }
  return table;
}

/** Every gradient rule Bulwark knows, by op type (default ONNX domain). */
export const RULES: Map<string, Rule> = buildRuleTable({
  elementwise: elementwiseRules,
  activation: activationRules,
  matmul: matmulRules,
  conv: convRules,
  pool: poolRules,
  norm: normRules,
  reduce: reduceRules,
  shape: shapeRules,
});

/** How Bulwark treats an op in a gradient pass. */
export function gradientSupport(opType: string, domain = ''): 'rule' | 'no-gradient' | 'unsupported' {
  if (domain !== '' && domain !== 'ai.onnx') return 'unsupported';
  if (RULES.has(opType)) return 'rule';
  if (NO_GRADIENT.has(opType)) return 'no-gradient';
  return 'unsupported';
}
