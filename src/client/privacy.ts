/**
 * The client's own account of sample-level DP (ALGORITHMS.md §2 and §4). Every DP-SGD step and every DPZero step
 * (MeZO's projected scalar, a 1-D Gaussian release) a task asks for is a release on THIS client's examples, whatever
 * run it belongs to. The coordinator's ledger keeps one account per run at the worst case among the clients it
 * sampled; the client keeps the exact account of its own data across all runs and refuses a task that would take it
 * past its own budget.
 *
 * A task's releases — `steps` Poisson-subsampled Gaussian steps at (q, σ) from its SampleDpParams — are written
 * durably before training starts, so a crash can only over-count. A task charged once is not charged again (a retried
 * upload trains nothing new; a re-pulled task id is the same assignment).
 */
import { open, readFile, rename } from 'node:fs/promises';
import { RdpAccountant } from '../privacy/accountant.js';
import { ClientError } from './errors.js';

export interface ClientPrivacyBudget {
  /** Total ε this client's examples may spend, across runs. */
  readonly epsilon: number;
  /** The δ at which ε is measured. */
  readonly delta: number;
}

/** The releases one task makes on the client's data. */
export interface TaskRelease {
  readonly q: number; // Poisson sampling rate of local batches
  readonly sigma: number; // noise multiplier
  readonly steps: number; // local steps, one release each
}

/** A task refused because it would spend more ε than the client's budget has left. */
export class PrivacyBudgetError extends ClientError {
  override name = 'PrivacyBudgetError';
  constructor(message: string) {
    super(message, 'privacy_budget');
  }
}

interface AccountFile {
  readonly format: 1;
  readonly accountant: unknown;
  readonly tasks: readonly string[];
}

export class ClientPrivacyAccount {
  private constructor(
    private readonly path: string,
    readonly budget: ClientPrivacyBudget,
    private accountant: RdpAccountant,
    private readonly tasks: Set<string>,
  ) {}

  /** Opens the account stored at `path` (a fresh one when the file does not exist). */
  static async open(path: string, budget: ClientPrivacyBudget): Promise<ClientPrivacyAccount> {
    if (!(budget.epsilon > 0 && budget.delta > 0 && budget.delta < 1)) {
      throw new PrivacyBudgetError(`a client privacy budget needs ε > 0 and 0 < δ < 1, got ε=${budget.epsilon}, δ=${budget.delta}`);
    }
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new ClientPrivacyAccount(path, budget, new RdpAccountant(), new Set());
      throw err;
    }
    const file = JSON.parse(text) as AccountFile;
    return new ClientPrivacyAccount(path, budget, RdpAccountant.loadState(file.accountant), new Set(file.tasks));
  }

  /** ε spent so far at the budget's δ. */
  spent(): number {
    return this.accountant.getEpsilon(this.budget.delta).epsilon;
  }

  /**
   * Records `release` for `taskId` durably, or throws PrivacyBudgetError (recording nothing) when the client's ε would
   * pass its budget. Returns ε after the task.
   */
  async charge(taskId: string, release: TaskRelease): Promise<number> {
    if (this.tasks.has(taskId)) return this.spent();
    const next = RdpAccountant.loadState(this.accountant.saveState());
    next.step(release.q, release.sigma, release.steps);
    const after = next.getEpsilon(this.budget.delta).epsilon;
    if (after > this.budget.epsilon) {
      throw new PrivacyBudgetError(
        `task ${taskId} would spend this client's ε from ${this.spent().toFixed(4)} to ${after.toFixed(4)}, past its budget ` +
          `ε=${this.budget.epsilon} (δ=${this.budget.delta}); raise the client's budget to take part`,
      );
    }
    const tasks = [...this.tasks, taskId];
    await writeDurably(this.path, JSON.stringify({ format: 1, accountant: next.saveState(), tasks } satisfies AccountFile));
    this.accountant = next;
    this.tasks.add(taskId);
    return after;
  }
}

/** Writes a temporary file, flushes it to disk, then renames it over `path` (atomic on POSIX). */
async function writeDurably(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}
