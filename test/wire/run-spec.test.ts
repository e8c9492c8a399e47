import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/coordinator/errors.js';
import { parseRunConfig } from '../../src/coordinator/run-config.js';
import { ProtocolError } from '../../src/wire/errors.js';
import type { CreateRunRequest } from '../../src/wire/admin-messages.js';
import { loadLetheProto } from '../../src/wire/proto.js';
import { runSpecToConfigJson } from '../../src/wire/run-spec.js';

describe('run spec – CreateRun to run config', () => {
  const proto = loadLetheProto();
  const createRun = proto.services.admin.CreateRun!;
  /** What the coordinator's handler receives for a request the admin CLI sends. */
  const received = (request: object): CreateRunRequest => createRun.requestDeserialize(createRun.requestSerialize(request)) as CreateRunRequest;

  it('run spec – set fields become snake_case config keys and unset ones take the parser defaults', () => {
    // Prepare
    const request = received({
      spec: { name: 'spam-dp', rounds: 20, sampleRate: 0.5, local: { mode: 'mezo', seedPoolK: 1024, mezoUpload: 'seeds' }, privacy: {}, lora: { r: 4 } },
    });
    // Execute
    const json = runSpecToConfigJson(request.spec, request.extraJson);
    const config = parseRunConfig(json);
    // Assert
    expect(json).toEqual({ name: 'spam-dp', rounds: 20, sample_rate: 0.5, local: { mode: 'mezo', seed_pool_k: 1024, mezo_upload: 'seeds' }, privacy: {}, lora: { r: 4 } });
    expect(config.rounds).toBe(20);
    expect(config.sampling).toEqual({ kind: 'poisson', q: 0.5 });
    expect(config.local.seedPoolK).toBe(1024);
    expect(config.lora.alpha).toBe(16);
    expect(config.privacy?.mode).toBe('central');
  });

  it('run spec – the forward-only learning rates and ESSA settings are typed fields the run config reads', () => {
    const request = received({ spec: { local: { mode: 'essa', mezoLr: 5e-3, essaLr: 0.02, essaFitness: 'accuracy', essaEvalExamples: 32 } } });
    const json = runSpecToConfigJson(request.spec, request.extraJson);
    const config = parseRunConfig(json);
    expect(json).toEqual({ local: { mode: 'essa', mezo_lr: 5e-3, essa_lr: 0.02, essa_fitness: 'accuracy', essa_eval_examples: 32 } });
    expect(config.local).toMatchObject({ mezoLr: 5e-3, essaLr: 0.02, essaFitness: 'accuracy', essaEvalExamples: 32 });
  });

  it('run spec – a bad forward-only value is refused with an error naming the field and what it must be', () => {
    const parsed = (local: object) => () => parseRunConfig(runSpecToConfigJson(received({ spec: { local } }).spec, ''));
    expect(parsed({ mezoLr: 0 })).toThrow(/local\.mezo_lr must be > 0, got 0/);
    expect(parsed({ essaLr: -0.01 })).toThrow(/local\.essa_lr must be > 0, got -0\.01/);
    expect(parsed({ essaFitness: 'reward' })).toThrow(/local\.essa_fitness must be one of neg_loss, accuracy, got "reward"/);
    expect(parsed({ essaEvalExamples: 0 })).toThrow(/local\.essa_eval_examples must be ≥ 1, got 0/);
    expect(parsed({ essaFitness: 'reward' })).toThrow(ConfigError);
  });

  it('run spec – extra_json fills keys without typed fields and nests into typed sub-messages', () => {
    const request = received({ spec: { name: 'x', local: { steps: 3 } }, extraJson: '{"local": {"essa_sigma": 0.05}, "eval_data": "builtin:spam-test"}' });
    expect(runSpecToConfigJson(request.spec, request.extraJson)).toEqual({ name: 'x', local: { steps: 3, essa_sigma: 0.05 }, eval_data: 'builtin:spam-test' });
  });

  it('run spec – a key set both typed and in extra_json is refused, naming the key', () => {
    const request = received({ spec: { local: { steps: 3 } }, extraJson: '{"local": {"steps": 4}}' });
    expect(() => runSpecToConfigJson(request.spec, request.extraJson)).toThrow(/local\.steps/);
    expect(() => runSpecToConfigJson(null, '[1]')).toThrow(ProtocolError);
    expect(() => runSpecToConfigJson(null, '{nope')).toThrow(ProtocolError);
  });
});
