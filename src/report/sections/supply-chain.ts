/**
 * The supply-chain section: the model-file scanner (src/supplychain/scan) run on the assessed model file.
 */
import { renderJson, scanPaths } from '../../supplychain/scan/index.js';
import type { Finding, ReportSection } from '../types.js';
import { statusFromFindings, type AssessmentContext, type SectionProvider } from './common.js';

/** Runs the model-file scanner on the model and reports its findings (already typed and mapped by the scanner). */
export const supplyChainProvider: SectionProvider = {
  id: 'supply-chain',
  title: 'Supply chain: model file scan',
  domain: 'supply-chain',
  metrics: ['supply-chain-findings'],
  async run(ctx: AssessmentContext): Promise<ReportSection> {
    const t0 = performance.now();
    ctx.progress({ section: 'supply-chain', stage: 'scan-file', done: 0, total: 1 });
    const r = await scanPaths([ctx.modelPath]);
    ctx.progress({ section: 'supply-chain', stage: 'scan-file', done: 1, total: 1 });
    const findings: Finding[] = r.findings.map((f) => ({ ...f, evidence: { ...f.evidence } }));
    const formats = [...new Set(r.scanned.map((s) => s.format))].join(', ');
    return {
      id: 'supply-chain',
      title: 'Supply chain: model file scan',
      domain: 'supply-chain',
      status: statusFromFindings(findings),
      summary: findings.length === 0
        ? `The model file (${formats}) holds nothing the scanner flags: no code that runs on load, no external data outside its folder, no custom operator domains.`
        : `The model-file scanner reports ${findings.length} finding${findings.length === 1 ? '' : 's'} (most severe: ${r.maxSeverity}).`,
      metrics: { 'supply-chain-findings': findings.length },
      findings,
      blocks: [
        {
          kind: 'metrics',
          id: 'supply-chain-metrics',
          items: [
            { label: 'items scanned', value: r.scanned.length, format: 'count' },
            { label: 'format', value: formats || 'unknown', format: 'text' },
            { label: 'findings', value: findings.length, format: 'count' },
          ],
        },
      ],
      details: renderJson(r),
      seconds: (performance.now() - t0) / 1000,
    };
  },
};
