/**
 * Worker-thread side of the session pool (./workers.ts): holds onnxruntime sessions created from model bytes and
 * runs them on request. One worker runs one request at a time; the pool gives each worker its own queue.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { ortSessionOptions } from './session.js';
import type { WireRequest, WireResponse, WireTensor } from './workers.js';

const sessions = new Map<number, ort.InferenceSession>();

function toWire(t: ort.Tensor): WireTensor {
  // onnxruntime's output buffers may be shared with the runtime: copy into a plain buffer that can be transferred.
  const data = (t.data as WireTensor['data']).slice() as WireTensor['data'];
  return { type: t.type, data, dims: [...t.dims] };
}

async function handle(msg: WireRequest): Promise<WireResponse> {
  try {
    if (msg.kind === 'create') {
      const session = await ort.InferenceSession.create(msg.bytes, ortSessionOptions(msg.threads));
      sessions.set(msg.session, session);
      return { id: msg.id, ok: true };
    }
    const session = sessions.get(msg.session);
    if (!session) return { id: msg.id, ok: false, message: `no session ${msg.session} in this worker` };
    if (msg.kind === 'release') {
      sessions.delete(msg.session);
      await session.release();
      return { id: msg.id, ok: true };
    }
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor(t.type as never, t.data as never, t.dims);
    const res = await session.run(feeds, msg.outputs);
    const outputs: Record<string, WireTensor> = {};
    for (const name of msg.outputs) outputs[name] = toWire(res[name]!);
    return { id: msg.id, ok: true, outputs };
  } catch (e) {
    return { id: msg.id, ok: false, message: (e as Error).message };
  }
}

parentPort!.on('message', (msg: WireRequest) => {
  void handle(msg).then((res) => {
    const transfer = res.ok && res.outputs ? Object.values(res.outputs).map((t) => t.data.buffer as ArrayBuffer) : [];
    parentPort!.postMessage(res, transfer);
  });
});
