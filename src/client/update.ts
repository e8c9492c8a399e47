/**
 * What leaves the client: the dense update u = trained − global over exactly the task's upload tensors, in the task's
 * order (fleet.proto UPDATE_KIND_DENSE; under FFA-LoRA the lora_B tensors and the head), privatised as the task
 * instructs (ALGORITHMS.md §2):
 *   - clip_norm C > 0: u ← u · min(1, C/‖u‖) over all upload tensors flattened together (DP-FedAvg's user-level
 *     clipping; the coordinator adds the central noise);
 *   - local_noise_multiplier σ > 0 as well: N(0, σ²C²) per coordinate after clipping (local DP);
 *   - report_clip_indicator: whether ‖u‖ ≤ C before clipping (adaptive clipping's bit, Andrew et al. 2021).
 * Pure apart from the injected noise source (node:crypto in production).
 */
import { clipTensors, localDp } from '../privacy/clip.js';
import type { NoiseSource } from '../privacy/gaussian.js';
import { globalNorm, type HostTensor, type TensorMap } from '../tensors/host.js';
import type { PrivacyInstructions } from '../wire/messages.js';
import { TaskError } from './errors.js';

export interface PreparedUpdate {
  /** The tensors to upload, in upload order. */
  readonly tensors: Map<string, HostTensor>;
  /** ‖u‖ before clipping. */
  readonly norm: number;
  /** True when clipping scaled the update down. */
  readonly clipped: boolean;
  /** UpdateHeader.within_clip_norm: ‖u‖ ≤ C before clipping; false when the task set no clip norm. */
  readonly withinClipNorm: boolean;
}

/** trained − global for each of `names`, in that order. TaskError when a name is missing or shapes disagree. */
export function denseDelta(trained: TensorMap, global: TensorMap, names: readonly string[]): Map<string, HostTensor> {
  if (names.length === 0) throw new TaskError('the task names no upload tensors');
  const out = new Map<string, HostTensor>();
  for (const name of names) {
    const t = trained.get(name);
    const g = global.get(name);
    if (!t || !g) throw new TaskError(`upload tensor ${name} is not part of the adapter (task and adapter disagree)`);
    if (t.shape.length !== g.shape.length || t.shape.some((d, i) => d !== g.shape[i])) {
      throw new TaskError(`upload tensor ${name}: trained shape [${t.shape.join(', ')}] differs from global [${g.shape.join(', ')}]`);
    }
    const d = new Float32Array(t.data.length);
    for (let i = 0; i < d.length; i++) d[i] = t.data[i]! - g.data[i]!;
    out.set(name, { shape: [...t.shape], data: d });
  }
  return out;
}

/** Applies the task's privacy instructions to an update (see the module comment). */
export function privatizeUpdate(update: TensorMap, privacy: PrivacyInstructions | null, noise: NoiseSource): PreparedUpdate {
  const clipNorm = privacy?.clipNorm ?? 0;
  if (!(clipNorm > 0)) {
    if ((privacy?.localNoiseMultiplier ?? 0) > 0) throw new TaskError('the task asks for local noise without a clip norm; noise needs a sensitivity bound');
    return { tensors: new Map(update), norm: globalNorm(update), clipped: false, withinClipNorm: false };
  }
  const sigma = privacy?.localNoiseMultiplier ?? 0;
  const result = sigma > 0 ? localDp(update, clipNorm, sigma, noise) : clipTensors(update, clipNorm);
  return { tensors: result.tensors, norm: result.norm, clipped: result.clipped, withinClipNorm: result.norm <= clipNorm };
}

/** The ESSA upload (UPDATE_KIND_ESSA_FITNESS): one tensor "fitness" [P, 2], row i = (F(s + σε_i), F(s − σε_i)). */
export function fitnessTensor(records: readonly { readonly fPlus: number; readonly fMinus: number }[]): Map<string, HostTensor> {
  const data = new Float32Array(records.length * 2);
  records.forEach((r, i) => {
    data[2 * i] = r.fPlus;
    data[2 * i + 1] = r.fMinus;
  });
  return new Map([['fitness', { shape: [records.length, 2], data }]]);
}
