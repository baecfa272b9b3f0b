type Key = string | number | null;

/**
 * A map keyed by a fixed-length tuple (a tree of Maps, one level per element). The hot paths
 * that count repeats (audit entries, pull counts, pull events) used to join the elements into
 * one string key; building that string and hashing it on every lookup cost more than the rest
 * of the recording. Here each element is looked up on its own, and strings that come from
 * caches (a manifest's digest, an actor's name) keep the hash V8 computed the first time.
 */
export class TupleMap<V> {
  private root = new Map<Key, unknown>();
  private count = 0;

  constructor(private readonly length: number) {}

  get size(): number {
    return this.count;
  }

  get(key: readonly Key[]): V | undefined {
    this.check(key);
    let level: Map<Key, unknown> | undefined = this.root;
    for (let i = 0; i < key.length - 1; i++) {
      level = level.get(key[i]!) as Map<Key, unknown> | undefined;
      if (!level) return undefined;
    }
    return level.get(key[key.length - 1]!) as V | undefined;
  }

  set(key: readonly Key[], value: V): void {
    this.check(key);
    let level = this.root;
    for (let i = 0; i < key.length - 1; i++) {
      let next = level.get(key[i]!) as Map<Key, unknown> | undefined;
      if (!next) level.set(key[i]!, (next = new Map()));
      level = next;
    }
    const last = key[key.length - 1]!;
    if (!level.has(last)) this.count++;
    level.set(last, value);
  }

  /** The values, in the order their keys were first set within each level. */
  values(): V[] {
    const out: V[] = [];
    const walk = (level: Map<Key, unknown>, depth: number): void => {
      for (const child of level.values()) {
        if (depth === this.length - 1) out.push(child as V);
        else walk(child as Map<Key, unknown>, depth + 1);
      }
    };
    walk(this.root, 0);
    return out;
  }

  clear(): void {
    this.root = new Map();
    this.count = 0;
  }

  private check(key: readonly Key[]): void {
    if (key.length !== this.length) throw new Error(`TupleMap: key of ${key.length} elements, expected ${this.length}`);
  }
}
