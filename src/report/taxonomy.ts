/**
 * The threat taxonomy of findings: MITRE ATLAS techniques (https://atlas.mitre.org) and the OWASP Machine Learning
 * Security Top 10 (2023, https://owasp.org/www-project-machine-learning-security-top-10/), a table of domains (one
 * per threat Bulwark assesses) and a table of finding rules, each mapped to both. Later domains add their rows
 * here (poisoning, privacy, ...); renderers take titles, help and links from these tables.
 */
import { internal } from '../core/errors.js';
import { SCAN_RULES } from '../supplychain/scan/index.js';
import type { Finding, Severity } from './types.js';

/** MITRE ATLAS techniques Bulwark's findings refer to (names as in ATLAS data v5). */
export const ATLAS_TECHNIQUES: Readonly<Record<string, string>> = {
  'AML.T0010': 'AI Supply Chain Compromise',
  'AML.T0011': 'User Execution',
  'AML.T0011.000': 'User Execution: Unsafe AI Artifacts',
  'AML.T0015': 'Evade AI Model',
  'AML.T0018': 'Manipulate AI Model',
  'AML.T0018.000': 'Manipulate AI Model: Poison AI Model',
  'AML.T0020': 'Poison Training Data',
  'AML.T0024': 'Exfiltration via AI Inference API',
  'AML.T0024.000': 'Exfiltration via AI Inference API: Infer Training Data Membership',
  'AML.T0024.001': 'Exfiltration via AI Inference API: Invert AI Model',
  'AML.T0024.002': 'Exfiltration via AI Inference API: Extract AI Model',
  'AML.T0029': 'Denial of AI Service',
  'AML.T0031': 'Erode AI Model Integrity',
  'AML.T0043': 'Craft Adversarial Data',
  'AML.T0043.000': 'Craft Adversarial Data: White-Box Optimization',
  'AML.T0043.001': 'Craft Adversarial Data: Black-Box Optimization',
  'AML.T0043.002': 'Craft Adversarial Data: Black-Box Transfer',
  'AML.T0043.003': 'Craft Adversarial Data: Manual Modification',
  'AML.T0043.004': 'Craft Adversarial Data: Insert Backdoor Trigger',
};

/** The OWASP Machine Learning Security Top 10 (2023). */
export const OWASP_ML_TOP10: Readonly<Record<string, { name: string; page: string }>> = {
  ML01: { name: 'Input Manipulation Attack', page: 'ML01_2023-Input_Manipulation_Attack' },
  ML02: { name: 'Data Poisoning Attack', page: 'ML02_2023-Data_Poisoning_Attack' },
  ML03: { name: 'Model Inversion Attack', page: 'ML03_2023-Model_Inversion_Attack' },
  ML04: { name: 'Membership Inference Attack', page: 'ML04_2023-Membership_Inference_Attack' },
  ML05: { name: 'Model Theft', page: 'ML05_2023-Model_Theft' },
  ML06: { name: 'AI Supply Chain Attacks', page: 'ML06_2023-AI_Supply_Chain_Attacks' },
  ML07: { name: 'Transfer Learning Attack', page: 'ML07_2023-Transfer_Learning_Attack' },
  ML08: { name: 'Model Skewing', page: 'ML08_2023-Model_Skewing' },
  ML09: { name: 'Output Integrity Attack', page: 'ML09_2023-Output_Integrity_Attack' },
  ML10: { name: 'Model Poisoning', page: 'ML10_2023-Model_Poisoning' },
};

/** Link to an ATLAS technique page. */
export function atlasUrl(id: string): string {
  return `https://atlas.mitre.org/techniques/${encodeURIComponent(id)}`;
}

/** Link to an OWASP ML Top 10 page. */
export function owaspUrl(id: string): string {
  const e = OWASP_ML_TOP10[id];
  return e ? `https://owasp.org/www-project-machine-learning-security-top-10/docs/${e.page}` : 'https://owasp.org/www-project-machine-learning-security-top-10/';
}

/** A threat domain: the section of the report that assesses it and its default mapping. */
export interface TaxonomyDomain {
  id: string;
  title: string;
  atlas: string[];
  owasp: string[];
  description: string;
}

/** The domains, one per threat Bulwark assesses or will assess. */
export const DOMAINS: Readonly<Record<string, TaxonomyDomain>> = {
  evasion: { id: 'evasion', title: 'Evasion (adversarial examples)', atlas: ['AML.T0043', 'AML.T0015'], owasp: ['ML01'], description: 'Inputs changed within a small budget that flip the model\'s decision.' },
  'supply-chain': { id: 'supply-chain', title: 'Supply chain (model file)', atlas: ['AML.T0010', 'AML.T0011.000'], owasp: ['ML06'], description: 'Unsafe content in the model artifact: code that runs on load, paths out of the model folder, malformed data.' },
  poisoning: { id: 'poisoning', title: 'Data poisoning', atlas: ['AML.T0020'], owasp: ['ML02'], description: 'Training data altered to degrade or steer the model.' },
  backdoor: { id: 'backdoor', title: 'Backdoors', atlas: ['AML.T0018', 'AML.T0043.004'], owasp: ['ML10'], description: 'Hidden triggers that force a chosen output.' },
  membership: { id: 'membership', title: 'Membership inference', atlas: ['AML.T0024.000'], owasp: ['ML04'], description: 'Telling whether a record was in the training data.' },
  inversion: { id: 'inversion', title: 'Model inversion', atlas: ['AML.T0024.001'], owasp: ['ML03'], description: 'Reconstructing training data or features from model outputs.' },
  extraction: { id: 'extraction', title: 'Model extraction', atlas: ['AML.T0024.002'], owasp: ['ML05'], description: 'Copying the model\'s function through its prediction API.' },
  hardening: { id: 'hardening', title: 'Hardening (evasion defenses)', atlas: ['AML.T0043', 'AML.T0015'], owasp: ['ML01'], description: 'Whether the model\'s defenses against adversarial inputs hold: adversarial training, certificates, detectors, preprocessing.' },
  privacy: { id: 'privacy', title: 'Privacy (training data and model confidentiality)', atlas: ['AML.T0024'], owasp: ['ML03', 'ML04', 'ML05'], description: 'What the model\'s outputs reveal about its training data and its function: differential privacy, membership inference, inversion, extraction.' },
  policy: { id: 'policy', title: 'Policy gates', atlas: [], owasp: [], description: 'Thresholds a pipeline sets on the report\'s metrics.' },
};

/** One kind of finding: its id, domain, default severity, mapping and help text (SARIF rules come from here). */
export interface FindingRule {
  id: string;
  domain: string;
  title: string;
  severity: Severity;
  atlas: string[];
  owasp: string[];
  help: string;
}

function rule(id: string, domain: string, severity: Severity, title: string, help: string, atlas?: string[], owasp?: string[]): FindingRule {
  const d = DOMAINS[domain]!;
  return { id, domain, severity, title, help, atlas: atlas ?? [...d.atlas], owasp: owasp ?? [...d.owasp] };
}

const MASKING = ['AML.T0043', 'AML.T0015'];

/** The finding rules of the report's own domains (the model-file scanner's rules are added by {@link findingRule}). */
export const FINDING_RULES: Readonly<Record<string, FindingRule>> = {
  'evasion-adversarial-examples': rule('evasion-adversarial-examples', 'evasion', 'high', 'Adversarial examples flip correct predictions within the threat model',
    'The evaluation ensemble (APGD-CE, APGD-T, FAB-T, Square; Croce & Hein 2020) found inputs within the eps-ball that the model misclassifies. Severity follows the share of correct predictions that survive: high under 10%, medium under 50%, low under 90%, info above. Harden with adversarial training, or certify with randomized smoothing.',
    ['AML.T0043', 'AML.T0043.000', 'AML.T0015']),
  'evasion-incomplete': rule('evasion-incomplete', 'evasion', 'low', 'Robustness evaluated without some attacks',
    'Some members of the ensemble could not run (a model without gradients skips the white-box attacks; non-image inputs skip Square). The robust accuracy is an upper bound from the attacks that ran.'),
  'evasion-masking-blackbox-beats-whitebox': rule('evasion-masking-blackbox-beats-whitebox', 'evasion', 'medium', 'Gradient masking: a black-box attack beat the white-box attacks',
    'Examples survived every gradient attack but fell to a query-only attack: the gradients mislead (Athalye et al. 2018). The robustness is not real; only the black-box figure is trustworthy, and adaptive attacks (BPDA, EOT) would do better.',
    ['AML.T0043', 'AML.T0043.001', 'AML.T0015']),
  'evasion-masking-non-monotone-curve': rule('evasion-masking-non-monotone-curve', 'evasion', 'medium', 'Gradient masking: robust accuracy rises with eps',
    'A larger eps-ball contains every adversarial example of a smaller one, so robust accuracy can only fall as eps grows; a rise means the attacks did not converge (Carlini et al. 2019).', MASKING),
  'evasion-masking-zero-gradients': rule('evasion-masking-zero-gradients', 'evasion', 'medium', 'Gradient masking: zero or non-finite input gradients',
    'Many examples have an all-zero or non-finite input gradient of the margin loss (shattered gradients: quantization, Round, Sign, thresholds). Gradient attacks cannot move them; use BPDA or black-box attacks.', MASKING),
  'evasion-masking-randomized-output': rule('evasion-masking-randomized-output', 'evasion', 'medium', 'Gradient masking: randomized outputs',
    'The same input gives different outputs. Attacks must average over the randomness (expectation over transformation, Athalye et al. 2018) to be reliable.', MASKING),
  'evasion-masking-saturated-probs': rule('evasion-masking-saturated-probs', 'evasion', 'medium', 'Gradient masking: saturated probability output',
    'The model outputs probabilities that are 0 or 1 to float precision, so losses on them have no gradient and score-based attacks see a flat surface (defensive distillation; Carlini & Wagner 2017). Attack the logits instead.', MASKING),
  'hardening-training-method': rule('hardening-training-method', 'hardening', 'info', 'Training method from the training record',
    'How the model was trained according to M.onnx.train.json (bulwark train): adversarial training (PGD-AT, TRADES, FGSM-RS), Gaussian noise augmentation for randomized smoothing, or standard training. A missing record, or one whose modelSha256 differs from the model, leaves the method unknown.'),
  'hardening-robustness-claim-contradicted': rule('hardening-robustness-claim-contradicted', 'hardening', 'high', 'The robust accuracy claimed by the training record is contradicted by the scan',
    'The training record reports a robust validation accuracy (PGD-20 during adversarial training) that the scan\'s stronger attacks, at an eps no larger than the training eps, do not reproduce: the measured robust accuracy is below the claim by more than max(5 points, 3 standard errors). Claims measured with weak attacks overstate robustness (Carlini et al. 2019); quote the scan\'s figure.',
    ['AML.T0043', 'AML.T0043.000', 'AML.T0015']),
  'hardening-certified-robustness': rule('hardening-certified-robustness', 'hardening', 'medium', 'Certified robustness (randomized smoothing)',
    'Certified accuracy of the smoothed classifier (Cohen et al. 2019) at the headline L2 radius (the scan\'s eps for L2, else one sigma): medium under 10%, low under 50%, else info. Info with no value when the model was not noise-trained and no --sigma was given: no certified robustness is claimed. A certificate holds whatever the attacker does, unlike empirical robust accuracy.'),
  'hardening-detector-evaded': rule('hardening-detector-evaded', 'hardening', 'high', 'An adaptive attack evades the adversarial-example detector',
    'Feature squeezing (Xu et al. 2018) is fitted at 5% FPR on clean data; adaptive attacks then look for inputs that are misclassified and not flagged: PGD on the mean logits of the model with and without squeezing (BPDA through the squeezers) and, at budgets standard and thorough or when the hardening section is asked for, a detector-aware attack that also minimizes the L1 score of the detector (He et al. 2017); per example the attacker keeps whichever input gets through. Severity from the share of examples that evade: high at 10% or more, medium at 2%, low above 0. Adaptive attacks give a lower bound: real attackers do at least as well.',
    ['AML.T0043', 'AML.T0043.000', 'AML.T0015']),
  'hardening-detector-weak': rule('hardening-detector-weak', 'hardening', 'medium', 'The detector misses most adversarial examples even without adaptation',
    'At its fitted threshold (5% FPR on clean data) the feature-squeezing detector flags under half of the scan\'s adversarial examples, before any attack adapts to it.'),
  'hardening-preprocessing-bypassed': rule('hardening-preprocessing-bypassed', 'hardening', 'medium', 'Preprocessing defenses hold only against non-adaptive attacks',
    'An input transformation (median filter, JPEG-like compression, bit-depth reduction) keeps accuracy on adversarial examples transferred from the undefended model, but PGD through the transformation with BPDA (Athalye et al. 2018) removes at least 10 points of it: the apparent robustness is gradient obfuscation.'),
  'privacy-no-dp': rule('privacy-no-dp', 'privacy', 'info', 'The model was not trained with differential privacy',
    'The training record has no DP-SGD privacy section (or there is no record): nothing bounds what the model reveals about any one training example. Train with bulwark train --dp (docs/PRIVACY.md) when the data is sensitive.',
    ['AML.T0024.000'], ['ML04']),
  'privacy-dp-epsilon': rule('privacy-dp-epsilon', 'privacy', 'low', 'Differential-privacy guarantee of the training run',
    'The (epsilon, delta) of the DP-SGD run from the training record. Severity: info up to epsilon 1, low up to 10, medium above 10 (a guarantee too weak to limit membership inference), and at least medium when delta exceeds 1/n for n training examples or the noise was seeded (not private).',
    ['AML.T0024.000'], ['ML04']),
  'privacy-membership-inference': rule('privacy-membership-inference', 'membership', 'medium', 'Membership inference: training examples can be told apart from unseen ones',
    'A membership-inference attack (loss threshold, Yeom et al. 2018; LiRA offline, Carlini et al. 2022) separates the given training examples from holdout examples. Severity from the TPR at 1% FPR relative to chance (1%): high at 10x or more, medium at 3x, low at 1.5x, else info.'),
  'privacy-model-extraction': rule('privacy-model-extraction', 'extraction', 'low', 'A functional copy of the model can be trained from its answers',
    'A Knockoff-Nets clone (Orekondy et al. 2019), trained on the model\'s top-1 answers to a small query budget from data of the same distribution, agrees with it on held-out inputs. Severity from the final agreement: medium at 90% or more, low at 50%, else info.'),
  'privacy-model-inversion': rule('privacy-model-inversion', 'inversion', 'low', 'Class representatives can be reconstructed from the model',
    'MI-Face (Fredrikson et al. 2015): gradient descent on the input maximizing each class probability, averaged over restarts. Severity from the share of classes whose reconstruction is nearest its own class mean (centered cosine): medium at 80% or more, low at 50%, else info.'),
  'gate-fail-under': rule('gate-fail-under', 'policy', 'high', 'A CI gate failed',
    'A metric of the report is below the value set by --fail-under metric=value; the command exits 1.'),
  'gate-fail-over': rule('gate-fail-over', 'policy', 'high', 'A CI gate failed',
    'A metric of the report is above the value set by --fail-over metric=value (a leakage or exposure limit, such as mia-tpr-at-1fpr or dp-epsilon); the command exits 1.'),
};

/**
 * The rule of a finding id: the report's own rules, then the model-file scanner's.
 * @returns the rule, or undefined for an unknown id
 */
export function findingRule(id: string): FindingRule | undefined {
  const own = FINDING_RULES[id];
  if (own) return own;
  const scan = (SCAN_RULES as Record<string, { id: string; title: string; severity: Severity; help: string; atlas: string[]; owasp: string[] }>)[id];
  if (scan) return { id: scan.id, domain: 'supply-chain', title: scan.title, severity: scan.severity, atlas: [...scan.atlas], owasp: [...scan.owasp], help: scan.help };
  return undefined;
}

/**
 * Makes a finding from a rule: title, mapping and default severity come from the table.
 * @throws BulwarkError BULWARK_E_INTERNAL when the rule id is not in the table (add the rule first)
 * @example makeFinding('evasion-adversarial-examples', { metric: 'robust-accuracy', value: 0.02, evidence: {} })
 */
export function makeFinding(id: string, f: { title?: string; severity?: Severity; metric: string; value: number | string; threshold?: number | string | null; evidence: Record<string, unknown>; atlas?: string[]; owasp?: string[] }): Finding {
  const r = findingRule(id);
  if (!r) internal(`no finding rule ${id} in src/report/taxonomy.ts`);
  return {
    id,
    title: f.title ?? r.title,
    severity: f.severity ?? r.severity,
    metric: f.metric,
    value: f.value,
    threshold: f.threshold ?? null,
    atlas: f.atlas ?? [...r.atlas],
    owasp: f.owasp ?? [...r.owasp],
    evidence: f.evidence,
  };
}
