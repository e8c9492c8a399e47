import { describe, expect, it } from 'vitest';
import { benchIngest } from '../../src/wire/bench.js';
import { loadLetheProto } from '../../src/wire/proto.js';

describe('wire – ingest benchmark', () => {
  it('wire – a 32 MiB update goes through PushUpdate, verified and assembled, and the rate is reported', async () => {
    const result = await benchIngest(loadLetheProto(), { totalBytes: 32 << 20, repeats: 5 });
    console.log(
      `ingest of 32 MiB over PushUpdate on 127.0.0.1: best ${result.ingestMbps.toFixed(0)} MB/s, median ${result.medianMbps.toFixed(0)} MB/s wall-clock; ${result.cpuMbps.toFixed(0)} MB per CPU-second`,
    );
    // The rate is what gets reported; on shared CI machines only a pathological stall is worth failing for.
    expect(result.totalBytes).toBe(32 << 20);
    expect(result.ingestMbps).toBeGreaterThan(5);
  });
});
