/**
 * Base models a client trains on, loaded once per process: the built-in tiny GPT-2 (ensurePretrainedBase: the cache
 * directory's, else the one shipped with Lethe, verified by checksum on every load) or a Hugging Face GPT-2
 * checkpoint directory the task names.
 */
import { loadCheckpoint } from '../model/checkpoint.js';
import { GPT2 } from '../model/gpt2.js';
import { baseDir, ensurePretrainedBase } from '../train/pretrain.js';

/** Task.base_model of the built-in base. */
export const BUILTIN_TINY = 'builtin:tiny';

export class BaseModels {
  private readonly models = new Map<string, Promise<GPT2>>();

  /**
   * @param cacheDir directory whose models/tiny-gpt2 holds (or will hold) the built-in base; several clients on
   *   one machine share one, so the base is trained once.
   */
  constructor(
    private readonly cacheDir: string,
    private readonly log: (line: string) => void,
  ) {}

  get(baseModel: string): Promise<GPT2> {
    let m = this.models.get(baseModel);
    if (!m) {
      m = this.load(baseModel);
      this.models.set(baseModel, m);
      m.catch(() => this.models.delete(baseModel));
    }
    return m;
  }

  private async load(baseModel: string): Promise<GPT2> {
    if (baseModel === BUILTIN_TINY) {
      // The cache directory's base, else the one shipped with Lethe; trained (once, logged) only when neither exists.
      let announced = false;
      const onStep = (): void => {
        if (!announced) this.log(`pretraining the built-in tiny base in ${baseDir(this.cacheDir)} (first use only)`);
        announced = true;
      };
      const base = await ensurePretrainedBase(this.cacheDir, { onStep });
      return new GPT2(base.config, base.weights);
    }
    const { config, weights } = await loadCheckpoint(baseModel);
    return new GPT2(config, weights);
  }

  dispose(): void {
    for (const m of this.models.values()) void m.then((model) => model.dispose(), () => undefined);
    this.models.clear();
  }
}
