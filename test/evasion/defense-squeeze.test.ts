import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadData } from '../../src/data/index.js';
import { buildArch } from '../../src/nn/zoo.js';
import { train } from '../../src/nn/train.js';
import { pgd } from '../../src/evasion/whitebox/pgd.js';
import { argmax } from '../../src/evasion/geometry.js';
import { NetworkModel } from '../../src/evasion/defense/model.js';
import { bitDepth, featureSqueezing, jpegLike, medianFilter, preprocessedModel, squeezeAdaptiveModel } from '../../src/evasion/defense/squeeze.js';

test('squeezers: bit depth, median filter and the JPEG-like quantizer do what they say', () => {
  const x = { data: Float32Array.from({ length: 16 }, (_, i) => i / 15), shape: [1, 1, 4, 4], dtype: 'float32' as const };
  assert.deepEqual(Array.from(bitDepth(1)(x).data), Array.from(x.data, (v) => (v >= 0.5 ? 1 : 0)));
  const spike = { data: new Float32Array(9), shape: [1, 1, 3, 3], dtype: 'float32' as const };
  spike.data[4] = 1;
  assert.deepEqual(Array.from(medianFilter(3)(spike).data), new Array(9).fill(0));
  const flat = { data: new Float32Array(64).fill(0.5), shape: [1, 1, 8, 8], dtype: 'float32' as const };
  for (const v of jpegLike(0.1)(flat).data) assert.ok(Math.abs(v - 0.5) < 0.05 + 1e-6);
});

test('feature squeezing flags PGD examples at 5% FPR; BPDA breaks the preprocessing defenses', async () => {
  const net = buildArch('cnn-small', { seed: 1 });
  await train(net, await loadData('mnist:train[0:3000]'), { epochs: 2, seed: 1, progress: false });
  const model = new NetworkModel(net);
  const fitSet = await loadData('mnist:test[0:300]');
  const evalSet = await loadData('mnist:test[300:400]');
  const det = featureSqueezing(model);
  const fit = await det.fit(fitSet.x, 0.05);
  assert.ok(fit.fpr <= 0.05);
  const cleanFlags = await det.decide(evalSet.x);
  const fpr = cleanFlags.reduce((a, v) => a + v, 0) / 100;
  const a = await pgd(model, evalSet.x, evalSet.y!, { eps: 0.3, norm: 'inf', steps: 20, seed: 1 });
  const advFlags = await det.decide(a.adversarial);
  let hit = 0;
  let succ = 0;
  for (let i = 0; i < 100; i++) if (a.success[i]) {
    succ++;
    hit += advFlags[i]!;
  }
  const detection = hit / succ;
  console.log(`feature squeezing: threshold ${fit.threshold.toFixed(4)}, held-out clean FPR ${fpr}, detection of ${succ} successful PGD-20 eps-0.3 examples ${detection.toFixed(2)}`);
  assert.ok(succ >= 50 && detection > 0.5, `detection ${detection}`);
  assert.ok(fpr <= 0.15);
  // adaptive attack: PGD on the mean of f(x) and f(squeeze(x)) fools the model while keeping the score low
  const adaptive = await pgd(squeezeAdaptiveModel(model), evalSet.x, evalSet.y!, { eps: 0.3, norm: 'inf', steps: 40, seed: 1 });
  const predA = argmax(await model.predict(adaptive.adversarial));
  const flagsA = await det.decide(adaptive.adversarial);
  let fooled = 0;
  let evaded = 0;
  for (let i = 0; i < 100; i++) if (predA[i] !== evalSet.y![i]) {
    fooled++;
    if (!flagsA[i]) evaded++;
  }
  console.log(`adaptive attack on feature squeezing: ${fooled}/100 misclassified by the model, ${evaded} of them not flagged`);
  // measured: 100 fooled, 6 unflagged; this mean-logit attack is a weak adaptive attack (see docs/HARDENING.md)
  assert.ok(fooled >= 80, `adaptive attack fooled ${fooled}`);
  await assert.rejects(featureSqueezing(model).decide(evalSet.x), (e: { code?: string }) => e.code === 'BULWARK_E_DETECTOR');

  // preprocessing: transfer of the undefended model's PGD examples vs. the BPDA adaptive attack
  for (const [name, t] of [['median 3x3', medianFilter(3)], ['jpeg-like', jpegLike(0.1)]] as const) {
    const defended = preprocessedModel(model, t);
    const pred = argmax(await defended.predict(a.adversarial));
    let transferAcc = 0;
    for (let i = 0; i < 100; i++) if (pred[i] === evalSet.y![i]) transferAcc++;
    const bpda = await pgd(defended, evalSet.x, evalSet.y!, { eps: 0.3, norm: 'inf', steps: 20, seed: 1 });
    console.log(`${name}: clean ${bpda.summary.cleanAccuracy.toFixed(2)}, PGD transferred from the undefended model ${transferAcc / 100}, BPDA PGD ${bpda.summary.robustAccuracy.toFixed(2)}`);
    assert.ok(bpda.summary.robustAccuracy < 0.1, `${name}: BPDA leaves ${bpda.summary.robustAccuracy}`);
    assert.ok(bpda.summary.robustAccuracy <= transferAcc / 100);
  }
  await model.dispose();
});
