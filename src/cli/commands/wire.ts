/**
 * `lethe wire bench`: how fast this machine ingests an update over PushUpdate on 127.0.0.1 (verify + assemble), and
 * the wire size of a FedKSeed seed upload.
 *
 *   lethe wire bench --mib 32 --repeats 5 --json   → {"ingest_mbps":…,"median_mbps":…,"cpu_mbps":…,"seed_upload_bytes":16774}
 */
import { parseArgs } from 'node:util';
import { type Command, UsageError, numberFlag } from '../command.js';
import { benchIngest, seedUploadWire } from '../../wire/bench.js';
import { loadLetheProto } from '../../wire/proto.js';

export const wireBenchCommand: Command = {
  path: ['wire', 'bench'],
  summary: 'ingest rate of a PushUpdate on 127.0.0.1 and the wire size of a 4096-scalar seed upload',
  usage: '[--mib 32] [--repeats 5] [--json]',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { mib: { type: 'string' }, repeats: { type: 'string' }, json: { type: 'boolean' } } });
    const mib = numberFlag('mib', values.mib, 32);
    const repeats = numberFlag('repeats', values.repeats, 5);
    if (!Number.isInteger(mib) || mib < 1 || mib > 60) throw new UsageError(`--mib must be an integer in 1..60, got ${mib}`);
    if (!Number.isInteger(repeats) || repeats < 1) throw new UsageError(`--repeats must be a positive integer, got ${repeats}`);
    const proto = loadLetheProto();
    const result = await benchIngest(proto, { totalBytes: mib << 20, repeats });
    const seedBytes = seedUploadWire(proto).bytes;
    if (values.json) {
      const out = { ingest_mbps: result.ingestMbps, median_mbps: result.medianMbps, cpu_mbps: result.cpuMbps, seed_upload_bytes: seedBytes };
      process.stdout.write(`${JSON.stringify(out)}\n`);
    } else {
      process.stdout.write(
        `ingest of ${mib} MiB over PushUpdate on 127.0.0.1: best ${result.ingestMbps.toFixed(0)} MB/s, median ` +
          `${result.medianMbps.toFixed(0)} MB/s, ${result.cpuMbps.toFixed(0)} MB per CPU-second\n` +
          `seed upload (K = 4096): ${seedBytes} bytes in one message, ${seedBytes - 4 * 4096} bytes of framing\n`,
      );
    }
    return 0;
  },
};
