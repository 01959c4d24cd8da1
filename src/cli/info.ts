import { gradientSupport } from '../autodiff/registry.js';
import { gradientBlockers } from '../autodiff/walker.js';
import { ELEM, elemName, readModel, realInputs, type ValueInfo } from '../onnx/ir.js';
import { trailingSoftmaxInput } from '../runtime/model.js';
import { parseFlags, printJson } from './args.js';
import { BulwarkError } from '../core/errors.js';

const HELP = `bulwark info <model.onnx> [--json]

Prints the model's inputs, outputs, opset, op histogram, and whether Bulwark can differentiate the output with respect
to the input (every op on the path has a gradient rule, and the path does not pass only through ops without a
gradient such as a final ArgMax or OneHot).`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { json: { type: 'boolean' } }, HELP, true);
  if (!p) return 0;
  if (p.positionals.length !== 1) throw new BulwarkError('BULWARK_E_USAGE', 'give exactly one model path', { hint: HELP });
  const file = p.positionals[0]!;
  const g = readModel(file);
  const hist = new Map<string, number>();
  for (const n of g.nodes) {
    const key = (n.domain ? `${n.domain}.` : '') + n.opType;
    hist.set(key, (hist.get(key) ?? 0) + 1);
  }
  const ops = [...hist].sort((a, b) => a[0].localeCompare(b[0])).map(([op, count]) => {
    const [domain, type] = op.includes('.') ? [op.slice(0, op.lastIndexOf('.')), op.slice(op.lastIndexOf('.') + 1)] : ['', op];
    return { op, count, gradient: gradientSupport(type, domain) };
  });
  const unsupported = ops.filter((o) => o.gradient === 'unsupported').map((o) => o.op);
  // An output reached from the input only through ops without a gradient (a final ArgMax or OneHot) has none.
  const input = realInputs(g)[0]?.name;
  const output = g.outputs[0];
  const blockers = unsupported.length === 0 && input && output ? gradientBlockers(g, input, output.name).map((n) => `${n.opType} (node ${n.name})`) : [];
  const scores = output === undefined || ([ELEM.FLOAT, ELEM.DOUBLE, ELEM.FLOAT16] as number[]).includes(output.elemType);
  const vi = (v: ValueInfo) => ({ name: v.name, type: elemName(v.elemType), shape: v.shape });
  const params = [...g.initializers.values()].reduce((a, t) => a + t.data.length, 0);
  const info = {
    file,
    opset: g.opset,
    opsetImports: g.opsetImports,
    irVersion: g.irVersion,
    producer: `${g.producerName} ${g.producerVersion}`.trim(),
    inputs: realInputs(g).map(vi),
    outputs: g.outputs.map(vi),
    nodes: g.nodes.length,
    parameters: params,
    outputKind: !scores ? 'labels' : g.outputs[0] && trailingSoftmaxInput(g, g.outputs[0].name) ? 'probs' : 'logits',
    ops,
    differentiable: unsupported.length === 0 && blockers.length === 0,
    unsupportedOps: unsupported,
    gradientBlockedBy: blockers,
  };
  if (p.values['json']) {
    printJson(info);
    return 0;
  }
  const lines = [
    `${file}`,
    `  opset ${g.opset}, IR ${g.irVersion}, producer ${info.producer || '-'}, ${g.nodes.length} nodes, ${params} parameters`,
    ...info.inputs.map((i) => `  input  ${i.name}: ${i.type} [${(i.shape ?? []).map((d) => d ?? '?').join(',')}]`),
    ...info.outputs.map((o) => `  output ${o.name}: ${o.type} [${(o.shape ?? []).map((d) => d ?? '?').join(',')}] (${info.outputKind})`),
    '  ops:',
    ...ops.map((o) => `    ${o.op.padEnd(24)} ${String(o.count).padStart(4)}  ${o.gradient}`),
    info.differentiable
      ? '  every op is differentiable: white-box attacks and training apply'
      : unsupported.length > 0
        ? `  not differentiable (${unsupported.join(', ')}): use black-box attacks`
        : `  not differentiable: the output depends on the input only through ${blockers.join(', ')}, which have no gradient: use black-box attacks`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
