import { existsSync } from 'node:fs';
import { connect } from 'nats';
import { describe, expect, it } from 'vitest';

const SERVERS = [process.env.NATS_URL ?? 'nats://127.0.0.1:4222'];
// The workers are forked from the built files (npm test builds first).
const BUILT = 'dist/bench/nats-floor.js';

async function floorStreams(): Promise<string[]> {
  const nc = await connect({ servers: SERVERS });
  try {
    const names: string[] = [];
    for await (const name of (await nc.jetstreamManager()).streams.names()) if (name.startsWith(`lethe_bench_floor_${process.pid}_`)) names.push(name);
    return names;
  } finally {
    await nc.close();
  }
}

describe('JetStream floor of the NATS bench', () => {
  it.skipIf(!existsSync(BUILT))('moves both halves through a temporary file stream, reads one back, and deletes the stream', async () => {
    const { measureJetStreamFloor } = (await import(`../../${BUILT}`)) as typeof import('../../src/bench/nats-floor.js');
    // 3 objects of 2.5 MB: each is three chunks (1 MiB less headroom), split 2 + 1 over the two workers.
    const { mbps, publishMbps } = await measureJetStreamFloor(SERVERS, 2.5e6, 3);
    expect(mbps).toBeGreaterThan(0);
    expect(Number.isFinite(mbps)).toBe(true);
    // The read-back comes after the publishing, in the same window.
    expect(publishMbps).toBeGreaterThan(mbps);
    expect(await floorStreams()).toEqual([]);
  }, 60_000);
});
