/**
 * `lethe logits`: the next-token logits of a checkpoint at the last position of a text, for checking a model (and
 * Lethe's forward) against another implementation.
 *
 *   lethe logits --model ./checkpoints/tiny --text "Hello, wor"            # top 10 next tokens
 *   lethe logits --model ./gpt2 --text "The capital of France is" --json  # {"logits": [...50257], "tokens": [...]}
 *
 * Texts longer than the model's context keep their last nPositions tokens.
 */
import * as tf from '@tensorflow/tfjs';
import { loadCheckpoint } from '../../model/checkpoint.js';
import { GPT2 } from '../../model/gpt2.js';
import { tokenizerFor } from '../../model/tokenizer.js';
import { numberFlag, UsageError, type Command } from '../command.js';
import { parseFlags, startBackend, str } from '../flags.js';

/** Logits [V] at the last position of `ids` (ids already fit the context). */
function lastLogits(model: GPT2, ids: readonly number[]): Float32Array {
  return tf.tidy(() => {
    const input = tf.tensor2d([...ids], [1, ids.length], 'int32');
    const logits = model.lmLogits(input); // [1, T, V]
    return tf.slice(logits, [0, ids.length - 1, 0], [1, 1, model.config.vocabSize]).dataSync() as Float32Array;
  });
}

export const logitsCommand: Command = {
  path: ['logits'],
  summary: "print a checkpoint's next-token logits at the end of a text",
  usage: '--model DIR --text TEXT [--json] [--top K] [--backend B]',
  async run(argv) {
    const flags = parseFlags(argv, {
      model: { type: 'string' },
      text: { type: 'string' },
      json: { type: 'boolean' },
      top: { type: 'string' },
      backend: { type: 'string' },
    });
    const dir = str(flags.model);
    const text = str(flags.text);
    if (!dir) throw new UsageError('--model DIR is required (a directory with config.json and model.safetensors)');
    if (text === undefined) throw new UsageError('--text is required');
    const top = numberFlag('top', str(flags.top), 10);
    if (!Number.isInteger(top) || top < 1) throw new UsageError(`--top must be a positive integer, got ${top}`);
    await startBackend(str(flags.backend));

    const { config, weights } = await loadCheckpoint(dir);
    const tokenizer = tokenizerFor(config);
    const tokens = tokenizer.encode(text).slice(-config.nPositions);
    if (tokens.length === 0) throw new UsageError('--text encodes to no tokens; give at least one character');
    const model = new GPT2(config, weights);
    let logits: Float32Array;
    try {
      logits = lastLogits(model, tokens);
    } finally {
      model.dispose();
    }

    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ logits: [...logits], tokens })}\n`);
      return 0;
    }
    const max = logits.reduce((m, v) => Math.max(m, v), -Infinity);
    const z = logits.reduce((s, v) => s + Math.exp(v - max), 0);
    const ranked = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, top);
    process.stdout.write(`${tokens.length} tokens; top ${ranked.length} next tokens of ${config.vocabSize}:\n`);
    for (const [rank, id] of ranked.entries()) {
      const p = Math.exp(logits[id]! - max) / z;
      const shown = JSON.stringify(tokenizer.decode([id]));
      process.stdout.write(`${String(rank + 1).padStart(3)}  id ${String(id).padStart(5)}  ${shown.padEnd(16)} logit ${logits[id]!.toFixed(4).padStart(9)}  p ${p.toFixed(4)}\n`);
    }
    return 0;
  },
};
