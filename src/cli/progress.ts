/** The progress bar training commands draw on stderr. */

/** 75 → "1m15s", 42 → "42s". */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** One progress line: bar, step, loss, throughput, ETA. Pure; exported for tests. */
export function progressLine(label: string, p: { step: number; steps: number; loss: number; elapsedSeconds: number; rate?: string }): string {
  const width = 24;
  const filled = Math.round((p.step / p.steps) * width);
  const eta = (p.elapsedSeconds / p.step) * (p.steps - p.step);
  return `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.step}/${p.steps} loss ${p.loss.toFixed(4)}${p.rate ? ` ${p.rate}` : ''} ETA ${duration(eta)}`;
}

/**
 * A progress reporter on stderr: redrawn in place on a terminal; otherwise one line per ~10% so logs stay short.
 * `done()` ends the line.
 */
export function progressReporter(label: string, stream: NodeJS.WriteStream = process.stderr): {
  update(p: { step: number; steps: number; loss: number; elapsedSeconds: number; rate?: string }): void;
  done(): void;
} {
  let drawn = false;
  let lastDecile = -1;
  return {
    update(p) {
      const line = progressLine(label, p);
      if (stream.isTTY) {
        stream.write(`\r${line}\x1b[K`);
        drawn = true;
        return;
      }
      const decile = Math.floor((p.step / p.steps) * 10);
      if (decile !== lastDecile || p.step === p.steps) {
        lastDecile = decile;
        stream.write(`${line}\n`);
      }
    },
    done() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}
