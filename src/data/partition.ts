/**
 * Client partitions for federated simulation. Each function is pure and deterministic given its seed, and every
 * example lands in exactly one client. Clients keep the parent's label list, so label ids agree across clients.
 */
import { byCodeUnit, labelCounts, subset, type LabeledDataset } from './dataset.js';
import { DataArgumentError } from './errors.js';
import { randomInt, seededUniform, shuffled, symmetricDirichlet } from './random.js';
import { apportion } from './split.js';

export interface DirichletOptions {
  /** At least this many examples per client, moved from the largest client if sampling left one short. Default 1. */
  readonly minPerClient?: number;
}

function checkClients(ds: LabeledDataset, clients: number, minPerClient: number): void {
  if (!Number.isInteger(clients) || clients < 1) {
    throw new DataArgumentError(`clients must be a positive integer, got ${clients}`, 'bad_option');
  }
  if (ds.examples.length < clients * minPerClient) {
    throw new DataArgumentError(
      `${ds.examples.length} examples cannot give ${clients} clients ${minPerClient} each; use fewer clients`,
      'too_few_examples',
    );
  }
}

function clientSets(ds: LabeledDataset, assigned: readonly (readonly number[])[]): LabeledDataset[] {
  return assigned.map((indices, c) => subset(ds, indices, `${ds.name}/client-${c}`));
}

/** IID partition: a seeded shuffle dealt into `clients` parts whose sizes differ by at most one. */
export function partitionIid(ds: LabeledDataset, clients: number, seed: string): LabeledDataset[] {
  checkClients(ds, clients, 1);
  const order = shuffled(
    ds.examples.map((_, i) => i),
    seededUniform(seed),
  );
  const sizes = apportion(order.length, new Array<number>(clients).fill(1));
  let at = 0;
  return clientSets(
    ds,
    sizes.map((size) => order.slice(at, (at += size))),
  );
}

/**
 * Label-skewed partition (Hsu, Qi & Brown 2019, "Measuring the effects of non-identical data distribution for
 * federated visual classification", §3): for each class, client shares p ~ Dir(alpha · 1_clients) and the class's
 * shuffled examples are cut in those proportions. Small alpha concentrates each class on few clients; large alpha
 * approaches IID. Clients left below `minPerClient` receive random examples from the currently largest client, a
 * small deterministic repair instead of resampling (which never terminates for tiny alpha and many clients).
 */
export function partitionDirichlet(
  ds: LabeledDataset,
  clients: number,
  alpha: number,
  seed: string,
  opts: DirichletOptions = {},
): LabeledDataset[] {
  const minPerClient = opts.minPerClient ?? 1;
  if (!(alpha > 0 && Number.isFinite(alpha))) {
    throw new DataArgumentError(`alpha must be a positive finite number, got ${alpha}`, 'bad_option');
  }
  if (!Number.isInteger(minPerClient) || minPerClient < 0) {
    throw new DataArgumentError(`minPerClient must be a non-negative integer, got ${minPerClient}`, 'bad_option');
  }
  checkClients(ds, clients, minPerClient);
  const u = seededUniform(seed);

  const byClass: number[][] = ds.labels.map(() => []);
  ds.examples.forEach((ex, i) => byClass[ex.label]!.push(i));
  const assigned: number[][] = Array.from({ length: clients }, () => []);
  for (const members of byClass) {
    const order = shuffled(members, u);
    const shares = symmetricDirichlet(clients, alpha, u);
    let at = 0;
    apportion(order.length, shares).forEach((size, c) => assigned[c]!.push(...order.slice(at, (at += size))));
  }

  for (;;) {
    const needy = assigned.findIndex((a) => a.length < minPerClient);
    if (needy < 0) break;
    const donor = assigned.reduce((best, a, c) => (a.length > assigned[best]!.length ? c : best), 0);
    const from = assigned[donor]!;
    const [moved] = from.splice(randomInt(u, from.length), 1);
    assigned[needy]!.push(moved!);
  }
  // Interleave classes within each client so its data is not ordered by label.
  return clientSets(
    ds,
    assigned.map((a) => shuffled(a, u)),
  );
}

/** One data set per distinct value of `meta[field]`, keys in sorted order (e.g. SpamAssassin's mail groups). */
export function partitionByMeta(ds: LabeledDataset, field: string): Map<string, LabeledDataset> {
  const groups = new Map<string, number[]>();
  ds.examples.forEach((ex, i) => {
    const value = ex.meta[field];
    if (value === undefined) {
      throw new DataArgumentError(
        `example ${i} of '${ds.name}' has no meta field '${field}' ` +
          `(it has: ${Object.keys(ex.meta).join(', ') || 'none'})`,
        'missing_meta',
      );
    }
    const g = groups.get(value);
    if (g === undefined) groups.set(value, [i]);
    else g.push(i);
  });
  const keys = [...groups.keys()].sort(byCodeUnit);
  return new Map(keys.map((k) => [k, subset(ds, groups.get(k)!, `${ds.name}/${field}=${k}`)]));
}

/**
 * Mean total-variation distance between each client's label distribution and the pooled one, in [0, 1): 0 for
 * identical label mixes, near 1 - 1/labels when each client holds a single class. A heterogeneity summary for reports.
 */
export function meanLabelSkew(parts: readonly LabeledDataset[]): number {
  const nonEmpty = parts.filter((p) => p.examples.length > 0);
  if (nonEmpty.length === 0) return 0;
  const k = nonEmpty[0]!.labels.length;
  const pooled = new Array<number>(k).fill(0);
  let total = 0;
  for (const p of nonEmpty) {
    labelCounts(p).forEach((c, j) => (pooled[j]! += c));
    total += p.examples.length;
  }
  let sum = 0;
  for (const p of nonEmpty) {
    const counts = labelCounts(p);
    let tv = 0;
    for (let j = 0; j < k; j++) tv += Math.abs(counts[j]! / p.examples.length - pooled[j]! / total);
    sum += tv / 2;
  }
  return sum / nonEmpty.length;
}
