/**
 * Inference with O3 unlearning (ALGORITHMS.md §6): h = W x + utility LoRA + Σ_t w_t(x)·(α/r) B_t A_t x.
 *
 * Per batch: (1) the pooled frozen-base features of every layer any request's detector reads, computed once (a host
 * pass over the tokens for layer 0, one base forward pass for deeper layers; features.ts) — pooled as the widest pooling any
 * detector uses, of which a narrower detector reads the first columns — and the input blocks' hashed n-grams of the
 * token ids (ngrams.ts), once per distinct n-gram spec, on the host; (2) each request's detector scores them (one
 * quadratic form per block, device-detector.ts) and its gate turns the score into w_t(x) per example; (3) the served forward runs base + utility adapter + each unlearning adapter whose branch is scaled per
 * example by w_t(x) (LoraParams.gate). Rows whose every gate is exactly 0 (below the gate cutoff) — most traffic —
 * run without the unlearning branches, so their cost is the utility forward plus step (1) and the scoring; the gated
 * rows run in a second, small forward.
 *
 * Combining requests: `sum` is the formula above. `strongest` (default) keeps, per example, only the request whose gate
 * is most confident (largest gate logit). With detectors that cannot tell the forget sets apart (AUROC well below 1), several gates fire on
 * one request's samples and the adapters' pseudo-label maps interfere: in the small test scenario (tiny random base)
 * `sum` let the first forget set's accuracy drift from 0.50 to 0.27 once requests 2 and 3 were served. A sample of
 * D_t matches its own detector's bank exactly, so its own request wins.
 */
import * as tf from '@tensorflow/tfjs';
import type { GPT2, LoraInput } from '../model/gpt2.js';
import type { LoraConfig, LoraParams } from '../model/lora.js';
import { toTf } from '../model/lora.js';
import type { TensorMap } from '../tensors/host.js';
import type { UtilityAdapter } from './adapter.js';
import type { Detector } from './detector.js';
import { DeviceDetector } from './device-detector.js';
import { UnlearningError } from './errors.js';
import { BaseFeatures, type Pooling, widestPooling } from './features.js';
import type { Gate } from './gate.js';
import { gateWeight } from './gate.js';
import type { NgramSpec, SparseRows } from './ngrams.js';
import { ngramRows } from './ngrams.js';

/** One completed unlearning request, as served. */
export interface ServedRequest {
  readonly id: string; // the request id, echoed in explanations
  readonly lora: LoraConfig;
  readonly adapter: TensorMap;
  readonly detector: Detector;
  readonly gate: Gate;
}

export interface Prediction {
  readonly probabilities: Float32Array; // [B, K] row-major softmax of the classification logits
  readonly gates: Float32Array; // [B, R] w_t(x) per example and request (request order), 0 where not applied
  readonly scores: Float32Array; // [B, R] the detectors' combined scores z_t(x)
}

interface DeviceRequest {
  readonly id: string;
  readonly lora: LoraConfig;
  readonly tensors: Map<string, tf.Tensor>;
  readonly detector: DeviceDetector;
  readonly gate: Gate;
  readonly featureSlots: readonly number[]; // index into the union of layers, per detector layer
  readonly inputSlot: number; // index into the distinct input-block specs, −1 without an input block
}

const specKey = (spec: NgramSpec): string => `${spec.orders.join(',')}/${spec.buckets}`;

export type GateCombination = 'strongest' | 'sum';

/** Serves base + utility adapter + gated unlearning adapters. Owns device copies of every adapter; dispose() frees them. */
export class UnlearningServing {
  private readonly utility: LoraParams;
  private readonly requests: DeviceRequest[];
  private readonly featureLayers: number[]; // union of detector layers, sorted
  private readonly pooling: Pooling; // the widest any detector needs (features.ts: narrower ones read a prefix)
  private readonly inputSpecs: NgramSpec[]; // distinct input-block specs of the detectors
  private readonly features: BaseFeatures;
  private disposed = false;

  constructor(
    private readonly model: GPT2,
    utility: UtilityAdapter,
    requests: readonly ServedRequest[],
    private readonly combination: GateCombination = 'strongest',
  ) {
    if (utility.lora.numLabels < 1) throw new UnlearningError('the utility adapter must hold a classification head', 'bad_adapter');
    this.featureLayers = [...new Set(requests.flatMap((r) => r.detector.layers.map((l) => l.layer)))].sort((a, b) => a - b);
    this.pooling = widestPooling(requests.map((r) => r.detector.pooling));
    const specs = new Map(requests.flatMap((r) => (r.detector.input ? [[specKey(r.detector.input.ngrams), r.detector.input.ngrams] as const] : [])));
    this.inputSpecs = [...specs.values()];
    const keys = [...specs.keys()];
    this.features = new BaseFeatures(model);
    this.utility = { config: utility.lora, tensors: toTf(utility.adapter) };
    this.requests = requests.map((r) => ({
      id: r.id,
      lora: r.lora,
      tensors: toTf(r.adapter),
      detector: new DeviceDetector(r.detector),
      gate: r.gate,
      featureSlots: r.detector.layers.map((l) => this.featureLayers.indexOf(l.layer)),
      inputSlot: r.detector.input ? keys.indexOf(specKey(r.detector.input.ngrams)) : -1,
    }));
  }

  get requestIds(): string[] {
    return this.requests.map((r) => r.id);
  }

  /** Detector scores and applied gate weights (after combination), each [B, R] on the host, for ids and mask [B, T]. */
  gates(ids: tf.Tensor2D, mask: tf.Tensor2D): { scores: Float32Array; gates: Float32Array } {
    this.guard();
    const b = ids.shape[0];
    const nr = this.requests.length;
    const scores = new Float32Array(b * nr);
    const gates = new Float32Array(b * nr);
    if (nr === 0) return { scores, gates };
    // The input blocks hash the token ids on the host; the embedding layer's pooling reuses that copy.
    const tokens = this.inputSpecs.length > 0 ? { ids: ids.dataSync(), mask: mask.dataSync() } : undefined;
    const inputs: SparseRows[] = tokens ? this.inputSpecs.map((spec) => ngramRows(tokens.ids, tokens.mask, b, ids.shape[1], spec)) : [];
    // One device→host read for all three outputs: each read waits for the device.
    const outputs = tf.tidy(() => {
      const feats = this.features.pooled(ids, mask, this.featureLayers, this.pooling, tokens);
      const per = this.requests.map((r) => r.detector.score(r.featureSlots.map((s) => feats[s]!), r.inputSlot >= 0 ? inputs[r.inputSlot] : undefined));
      const stack = (pick: (p: (typeof per)[number]) => tf.Tensor1D): tf.Tensor2D => tf.stack(per.map(pick), 1) as tf.Tensor2D; // [B, R]
      return tf.stack([stack((p) => p.z), stack((p) => p.nearest), stack((p) => p.distance)]); // [3, B, R]
    });
    const host = outputs.dataSync() as Float32Array;
    outputs.dispose();
    const n = b * nr;
    scores.set(host.subarray(0, n));
    const nearest = host.subarray(n, 2 * n);
    const distance = host.subarray(2 * n, 3 * n);
    for (let i = 0; i < scores.length; i++) gates[i] = gateWeight(this.requests[i % nr]!.gate, scores[i]!, nearest[i]!, distance[i]!);
    if (this.combination === 'strongest') {
      // Strongest by gate logit k·(z − z₀), not by weight: weights saturate at 1 and would tie.
      for (let i = 0; i < b; i++) {
        let best = 0;
        // A member of request t's forget set (w = 1 by bank match) outranks any logit.
        const logit = (t: number): number =>
          nearest[i * nr + t]! >= this.requests[t]!.gate.memberCos
            ? Infinity
            : gates[i * nr + t] === 0
              ? -Infinity // outside its support or below its cutoff: never the strongest
              : this.requests[t]!.gate.slope * (scores[i * nr + t]! - this.requests[t]!.gate.center);
        for (let t = 1; t < nr; t++) if (logit(t) > logit(best)) best = t;
        for (let t = 0; t < nr; t++) if (t !== best) gates[i * nr + t] = 0;
      }
    }
    return { scores, gates };
  }

  /**
   * The adapters for a classify/forward call on the rows whose gates are `gates` ([rows, R], as from gates()):
   * the utility adapter first (its head is the one used), then every request with a non-zero weight on some row,
   * gated per row. Call inside tf.tidy (the gate tensors are created here).
   */
  adapters(gates: Float32Array, rows: number): LoraInput {
    const nr = this.requests.length;
    const out: LoraParams[] = [this.utility];
    this.requests.forEach((r, t) => {
      const w = Float32Array.from({ length: rows }, (_, i) => gates[i * nr + t]!);
      if (w.some((v) => v > 0)) out.push({ config: r.lora, tensors: r.tensors, gate: tf.tensor1d(w) });
    });
    return out;
  }

  /** Label probabilities of ids [B, T] (mask [B, T]: 1 token, 0 pad), with every request's score and gate. */
  predict(ids: tf.Tensor2D, mask: tf.Tensor2D): Prediction {
    const { scores, gates } = this.gates(ids, mask);
    const b = ids.shape[0];
    const nr = this.requests.length;
    const plain: number[] = [];
    const gated: number[] = [];
    for (let i = 0; i < b; i++) (gates.subarray(i * nr, (i + 1) * nr).some((w) => w > 0) ? gated : plain).push(i);
    const k = this.utility.config.numLabels;
    const probabilities = new Float32Array(b * k);
    const run = (rows: number[], withGates: boolean): void => {
      if (rows.length === 0) return;
      const p = tf.tidy(() => {
        const all = rows.length === b;
        const idx = all ? undefined : tf.tensor1d(rows, 'int32');
        const x = idx ? (tf.gather(ids, idx) as tf.Tensor2D) : ids;
        const m = idx ? (tf.gather(mask, idx) as tf.Tensor2D) : mask;
        const rowGates = Float32Array.from(rows.flatMap((i) => [...gates.subarray(i * nr, (i + 1) * nr)]));
        return tf.softmax(this.model.classify(x, m, withGates ? this.adapters(rowGates, rows.length) : this.utility));
      });
      const host = p.dataSync() as Float32Array;
      p.dispose();
      rows.forEach((row, j) => probabilities.set(host.subarray(j * k, (j + 1) * k), row * k));
    };
    // Each row runs once: the plain rows with the utility adapter alone, the gated ones (a few per batch of retained
    // traffic) with their unlearning adapters too. Running the whole batch through the utility pass and overwriting the
    // gated rows cost ~2 ms per gated row of a 32 × 128 batch on the tiny base (wasm); the gather of the rows costs far less.
    run(plain, false);
    run(gated, true);
    return { probabilities, gates, scores };
  }

  /** Frees the device copies. Idempotent; later calls throw. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.utility.tensors.values()) t.dispose();
    this.features.dispose();
    for (const r of this.requests) {
      for (const t of r.tensors.values()) t.dispose();
      r.detector.dispose();
    }
  }

  private guard(): void {
    if (this.disposed) throw new UnlearningError('this UnlearningServing was disposed; build a new one', 'bad_option');
  }
}
