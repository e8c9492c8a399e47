/**
 * Memoises a zero-argument builder of an immutable value. The built-in corpora are costly to parse and never change
 * within a process, so this is the one place the data layer keeps state between calls.
 */
export function once<T>(build: () => T): () => T {
  let built: { readonly value: T } | undefined;
  return () => (built ??= { value: build() }).value;
}
