/** Files that ship inside the package (proto/, models/), found from any module whether it runs from src/ or dist/. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory holding Lethe's package.json: walks up from this module. */
export function packageRoot(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(from)}; the Lethe package is incomplete`);
    dir = parent;
  }
}

/** The pretrained built-in models that ship with the package (models/<name>). */
export function shippedModelDir(name: string): string {
  return join(packageRoot(), 'models', name);
}
