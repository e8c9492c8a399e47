/**
 * The bytes of file blobs this process has just written or verified, so that reading an update back to aggregate it,
 * moments after it arrived, neither touches the disk nor hashes it again. Bounded by total size; least recently used
 * entries go first. Entries are only ever bytes whose hash this process computed itself.
 */
export class BlobCache {
  private readonly entries = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(readonly limitBytes: number) {}

  get(sha256: string): Uint8Array | undefined {
    const hit = this.entries.get(sha256);
    if (hit !== undefined) {
      this.entries.delete(sha256);
      this.entries.set(sha256, hit);
    }
    return hit;
  }

  set(sha256: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.limitBytes || this.entries.has(sha256)) return;
    this.entries.set(sha256, bytes);
    this.bytes += bytes.byteLength;
    for (const [key, old] of this.entries) {
      if (this.bytes <= this.limitBytes) break;
      this.entries.delete(key);
      this.bytes -= old.byteLength;
    }
  }
}
