import v8 from 'node:v8';
import vm from 'node:vm';

/** Bytes of streamed body between two young-generation collections. */
export const COLLECT_EVERY_BYTES = 8 * 1024 * 1024;

/**
 * A streamed upload leaves a trail of dead buffers: every read from the socket (or a file) is a
 * new buffer of up to 64 KiB, dead once written on. V8 frees a dead buffer's memory only when a
 * collection finds it, and its young-generation collections are paced by the small JS objects a
 * stream allocates, not by the buffers' bytes: at 300 MB/s, tens of MB of dead buffers stayed
 * resident. Asking for a young-generation collection (a scavenge of the 1 MiB semi-spaces, not
 * a full collection) after every 8 MiB of body frees them as the upload goes: the peak resident
 * memory of a 1 GiB push fell by about 20 MB (bench/README.md, "Changes and their effect"). A
 * full collection instead raised it.
 */
export class YoungGarbage {
  private pending = 0;

  constructor(private readonly collect: () => void) {}

  /** Counts `bytes` of streamed body; collects when another COLLECT_EVERY_BYTES went through. */
  passed(bytes: number): void {
    this.pending += bytes;
    if (this.pending < COLLECT_EVERY_BYTES) return;
    this.pending = 0;
    this.collect();
  }
}

/** The process's count of streamed upload bytes, shared by all uploads. */
export const uploadGarbage = new YoungGarbage(() => minorCollection()());

let collector: (() => void) | undefined;

/**
 * V8's `gc()` asked for a young-generation collection only. `gc` is exposed by a V8 flag that
 * may be set after start; it then exists in contexts created from then on. Where that fails, no
 * collection is asked for (V8 collects on its own schedule, as before).
 */
function minorCollection(): () => void {
  if (!collector) {
    try {
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as (options: { type: 'minor' }) => void;
      collector = () => gc({ type: 'minor' });
    } catch {
      collector = () => undefined;
    }
  }
  return collector;
}
