/**
 * `lethe demo --unlearn`: the O3 unlearning scenario of ALGORITHMS.md §6 on the demo's federated run.
 *
 *   1. Client 0 owns one whole SpamAssassin group (one source of the corpus, `forgetGroup`): all of that group's
 *      train-split mails are in its data file and in no other client's. The rest of the train split is cut into
 *      Dirichlet(α) shares as in the plain demo; client 0 also holds share 0, which its gate calibrates against.
 *   2. The federated run trains as usual (demo.ts).
 *   3. Client 0 itself asks to forget its mails of that group (FleetService.SubmitUnlearning, signed with its own key);
 *      its `client run` process picks up the unlearning task, trains the package and uploads it; the coordinator
 *      verifies and activates it.
 *   4. Before and after, every mail of three sets goes through the coordinator's Predict: the forgotten mails, held-out
 *      mails of the same group (test split), and held-out mails of the other groups (retained). The demo prints
 *      accuracy and mean gate weight per set, and writes them to <data-dir>/unlearn.json.
 *
 * Client data travels as JSONL files (text, label), the forget group's mails first, so the request names them by row
 * (ForgetSelector.example_ids): a JSONL file carries no group field.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { submitOwnUnlearning } from '../client/unlearn-request.js';
import { DEFAULT_PARTITION_SEED } from '../client/local-data.js';
import { DEFAULT_COORDINATOR_CONFIG } from '../coordinator/config.js';
import { partitionDirichlet, spamAssassin, spread, subset, trainTestSplit, type Example, type LabeledDataset } from '../data/index.js';
import type { UnlearningRequest } from '../wire/admin-messages.js';
import type { AdminApi } from './admin.js';
import { DEMO_RUN_SEED, type DemoOptions } from './config.js';
import type { DemoStage, StageContext } from './demo.js';
import { delay } from './processes.js';

export interface UnlearnScenario {
  /** 'hard-ham-1': the group client 0 owns and forgets (see BENCHMARKS.md, Unlearning, for the per-group AUROC). */
  readonly forgetGroup: string;
  /** 300: held-out mails of the other groups measured as the retained set. */
  readonly retainExamples: number;
  /** 'input_hash_label': each forgotten mail's target is a label fixed by its hash, so its accuracy goes to chance. */
  readonly targetPolicy: string;
  /** 600: seconds to wait for the request to become active. */
  readonly timeoutS: number;
  /** 8: Predict calls in flight at once. */
  readonly concurrency: number;
}

export const DEFAULT_UNLEARN_SCENARIO: UnlearnScenario = Object.freeze({
  forgetGroup: 'hard-ham-1',
  retainExamples: 300,
  targetPolicy: 'input_hash_label',
  timeoutS: 600,
  concurrency: 8,
});

/** What client i holds: client 0 the whole forget group (rows 0 … forgetRows − 1) and share 0, client i share i. */
export interface ScenarioData {
  readonly clients: readonly LabeledDataset[];
  readonly forgetRows: number;
  readonly forget: readonly Example[]; // the forget group's train-split mails
  readonly heldOut: readonly Example[]; // its test-split mails
  readonly retain: readonly Example[]; // other groups' test-split mails (a spread sample)
}

/**
 * Moves single examples between shares so that every share holds every label: a client whose file lacks a label
 * would infer a different label set than the run's and refuse its tasks. Takes from the share holding most of it.
 */
export function everyLabelEverywhere(shares: readonly Example[][], numLabels: number): void {
  for (const share of shares) {
    for (let label = 0; label < numLabels; label++) {
      if (share.some((e) => e.label === label)) continue;
      const count = (s: Example[]): number => s.filter((e) => e.label === label).length;
      const donor = shares.reduce((best, s) => (count(s) > count(best) ? s : best));
      if (count(donor) < 2) throw new RangeError(`too few examples of label ${label} to give every client one`);
      share.push(...donor.splice(donor.findIndex((e) => e.label === label), 1));
    }
  }
}

/** Splits the built-in task for the scenario (the coordinator's eval split: test fraction and run seed). */
export function scenarioData(o: Pick<DemoOptions, 'clients' | 'alpha'>, s: UnlearnScenario): ScenarioData {
  const { train, test } = trainTestSplit(spamAssassin(), { testFraction: DEFAULT_COORDINATOR_CONFIG.evalTestFraction, seed: DEMO_RUN_SEED });
  const inGroup = (e: Example): boolean => e.meta['group'] === s.forgetGroup;
  const forget = train.examples.filter(inGroup);
  if (forget.length === 0) throw new RangeError(`SpamAssassin has no group "${s.forgetGroup}"`);
  const restIdx = train.examples.flatMap((e, i) => (inGroup(e) ? [] : [i]));
  const rest = subset(train, restIdx, 'rest');
  const shares = partitionDirichlet(rest, o.clients, o.alpha, DEFAULT_PARTITION_SEED, { minPerClient: 8 }).map((d) => [...d.examples]);
  everyLabelEverywhere(shares, train.labels.length);
  const clients = shares.map((share, i) => ({ name: `client-${i}`, labels: train.labels, examples: i === 0 ? [...forget, ...share] : share }));
  return {
    clients,
    forgetRows: forget.length,
    forget,
    heldOut: test.examples.filter(inGroup),
    retain: spread(test.examples.filter((e) => !inGroup(e)), s.retainExamples),
  };
}

/** Accuracy and mean gate weight of the served model on a set of mails, through Predict. */
export interface SetScore {
  readonly n: number;
  readonly accuracy: number;
  readonly meanGate: number;
}

async function score(admin: AdminApi, runId: string, examples: readonly Example[], concurrency: number): Promise<SetScore> {
  let correct = 0;
  let gates = 0;
  for (let start = 0; start < examples.length; start += concurrency) {
    const part = examples.slice(start, start + concurrency);
    const answers = await Promise.all(part.map((e) => admin.predict(runId, e.text, true)));
    answers.forEach((a, i) => {
      if (a.predictedIndex === part[i]!.label) correct += 1;
      gates += a.gates.reduce((m, g) => Math.max(m, g.weight), 0);
    });
  }
  return { n: examples.length, accuracy: correct / examples.length, meanGate: gates / examples.length };
}

export interface UnlearnOutcome {
  readonly forgetGroup: string;
  readonly request: { readonly id: string; readonly state: string; readonly message: string; readonly seconds: number; readonly metrics: Readonly<Record<string, number>> };
  readonly chance: number;
  readonly before: Readonly<Record<'forget' | 'heldOut' | 'retain', SetScore>>;
  readonly after: Readonly<Record<'forget' | 'heldOut' | 'retain', SetScore>>;
}

const pct = (v: number): string => `${(100 * v).toFixed(1)}%`.padStart(7);

/** The before/after table. */
export function formatOutcome(r: UnlearnOutcome): string {
  const row = (name: string, k: 'forget' | 'heldOut' | 'retain'): string =>
    `  ${name.padEnd(30)} ${String(r.after[k].n).padStart(5)} ${pct(r.before[k].accuracy)} ${pct(r.after[k].accuracy)} ${r.after[k].meanGate.toFixed(2).padStart(9)}`;
  return [
    `  ${'set'.padEnd(30)} ${'mails'.padStart(5)} ${'before'.padStart(7)} ${'after'.padStart(7)} ${'mean gate'.padStart(9)}`,
    row(`forgotten (${r.forgetGroup}, train)`, 'forget'),
    row(`held-out ${r.forgetGroup} (test)`, 'heldOut'),
    row('retained (other groups, test)', 'retain'),
    `  chance ${pct(r.chance).trim()}; the target is forgotten and held-out accuracy near chance, retained within 2 points`,
  ].join('\n');
}

/** The `--unlearn` stage for runDemo (demo.ts). */
export function unlearnStage(o: DemoOptions, s: UnlearnScenario = DEFAULT_UNLEARN_SCENARIO): DemoStage {
  let data: ScenarioData | undefined;
  return {
    async prepare(sessionRoot: string): Promise<(i: number) => string[]> {
      const d = scenarioData(o, s);
      data = d;
      const dir = join(sessionRoot, 'client-data');
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const files = await Promise.all(
        d.clients.map(async (c, i) => {
          const file = join(dir, `client-${i}.jsonl`);
          await writeFile(file, c.examples.map((e) => JSON.stringify({ text: e.text, label: c.labels[e.label] })).join('\n') + '\n', { mode: 0o600 });
          return file;
        }),
      );
      return (i) => ['--data', files[i]!];
    },

    async afterRun(ctx: StageContext): Promise<void> {
      const d = data!;
      const sets = { forget: d.forget, heldOut: d.heldOut, retain: d.retain };
      const scoreAll = async (): Promise<UnlearnOutcome['before']> => ({
        forget: await score(ctx.admin, ctx.runId, sets.forget, s.concurrency),
        heldOut: await score(ctx.admin, ctx.runId, sets.heldOut, s.concurrency),
        retain: await score(ctx.admin, ctx.runId, sets.retain, s.concurrency),
      });
      ctx.out(`\nUnlearning: client 0 owns all ${d.forgetRows} train mails of ${s.forgetGroup} and asks to forget them.\n`);
      const before = await scoreAll();
      const started = Date.now();
      const submitted = await submitOwnUnlearning(
        {
          runId: ctx.runId,
          forget: { exampleIds: Array.from({ length: d.forgetRows }, (_, i) => String(i)) },
          targetPolicy: s.targetPolicy,
          reason: `lethe demo --unlearn: client 0 forgets its ${s.forgetGroup} mails`,
        },
        { dataDir: ctx.clientDir(0), coordinator: ctx.address },
      );
      ctx.out(`Request ${submitted.requestId} submitted by client 0 (signed with its own key); waiting for it to train and activate…\n`);
      let r: UnlearningRequest = submitted;
      while (r.state !== 'UNLEARNING_STATE_COMPLETED' && r.state !== 'UNLEARNING_STATE_FAILED') {
        if (Date.now() - started > s.timeoutS * 1000) throw new Error(`unlearning request ${r.requestId} not done after ${s.timeoutS} s (state ${r.state}); see the client 0 log`);
        if (ctx.signal?.aborted) return;
        await delay(1000, ctx.signal);
        r = await ctx.admin.getUnlearning(submitted.requestId);
      }
      const seconds = (Date.now() - started) / 1000;
      if (r.state === 'UNLEARNING_STATE_FAILED') throw new Error(`unlearning request ${r.requestId} failed: ${r.message}`);
      ctx.out(`Request active after ${seconds.toFixed(0)} s\n`);
      const outcome: UnlearnOutcome = {
        forgetGroup: s.forgetGroup,
        request: { id: r.requestId, state: r.state, message: r.message, seconds, metrics: r.metrics },
        chance: 1 / d.clients[0]!.labels.length,
        before,
        after: await scoreAll(),
      };
      ctx.out(`${formatOutcome(outcome)}\n`);
      await writeFile(join(o.dataDir, 'unlearn.json'), `${JSON.stringify(outcome, null, 2)}\n`);
      ctx.out(`Unlearning results: ${join(o.dataDir, 'unlearn.json')}\n`);
    },
  };
}
