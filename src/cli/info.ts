import { gradientSupport } from '../autodiff/registry.js';
import { elemName, readModel, realInputs, type ValueInfo } from '../onnx/ir.js';
import { trailingSoftmaxInput } from '../runtime/model.js';
import { parseFlags, printJson } from './args.js';
import { BulwarkError } from '../core/errors.js';

const HELP = `bulwark info <model.onnx> [--json]

Prints the model's inputs, outputs, opset, op histogram, and whether every op is differentiable by Bulwark.`;

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
    outputKind: g.outputs[0] && trailingSoftmaxInput(g, g.outputs[0].name) ? 'probs' : 'logits',
    ops,
    differentiable: unsupported.length === 0,
    unsupportedOps: unsupported,
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
    info.differentiable ? '  every op is differentiable: white-box attacks and training apply' : `  not differentiable (${unsupported.join(', ')}): use black-box attacks`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
