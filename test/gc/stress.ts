// The GC concurrency stress: clients push images that share layers (skipping blobs that HEAD
// says exist), move and delete tags, mount blobs and pull, while garbage collection runs back to
// back with a 1 s grace period; then every tagged image and every tag-history entry must pull
// whole, and no unreferenced blob older than the grace period may remain.
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const REPOS = ['stress/a', 'stress/b', 'stress/c'];
const TAGS = ['t0', 't1', 't2', 't3'];

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

export interface StressReport {
  pushes: number;
  /** Manifest PUTs refused with MANIFEST_BLOB_UNKNOWN (a skipped or mounted blob collected meanwhile), then pushed whole. */
  blobRaces: number;
  mounts: number;
  tagDeletes: number;
  pulls: number;
  garbagePushed: number;
  gcRuns: number;
  blobsFreed: number;
  failures: string[];
}

interface Blob {
  digest: string;
  content: Buffer;
}

export class GcStress {
  readonly report: StressReport = { pushes: 0, blobRaces: 0, mounts: 0, tagDeletes: 0, pulls: 0, garbagePushed: 0, gcRuns: 0, blobsFreed: 0, failures: [] };
  private readonly shared: Blob[];
  /** Blobs pushed again and again without staying referenced: queued for deletion while pushed. */
  private readonly recycled: Blob[];

  constructor(private readonly urls: string[]) {
    const blobs = (n: number) =>
      Array.from({ length: n }, () => {
        const content = randomBytes(2048 + Math.floor(Math.random() * 14_000));
        return { digest: sha256(content), content };
      });
    this.shared = blobs(8);
    this.recycled = blobs(6);
  }

  /** Clients and back-to-back GC runs until `durationMs` has passed. */
  async run(durationMs: number, clients: number): Promise<StressReport> {
    const deadline = Date.now() + durationMs;
    await Promise.all([...Array.from({ length: clients }, () => this.client(deadline)), this.collector(deadline)]);
    return this.report;
  }

  private fail(message: string): void {
    if (this.report.failures.length < 50) this.report.failures.push(message);
  }

  private async client(deadline: number): Promise<void> {
    while (Date.now() < deadline && this.report.failures.length === 0) {
      const roll = Math.random();
      try {
        if (roll < 0.35) await this.pushImage(pick(REPOS), pick(TAGS));
        else if (roll < 0.5) await this.mountAndUse(pick(REPOS));
        else if (roll < 0.62) await this.deleteTag(pick(REPOS), pick(TAGS));
        else if (roll < 0.85) await this.pullTag(pick(this.urls), pick(REPOS), pick(TAGS), false);
        else await this.pushGarbage(pick(REPOS));
      } catch (error) {
        this.fail(error instanceof Error ? error.message : String(error));
      }
    }
  }

  /** GC runs back to back (any node; 409 while another holds the lease). */
  private async collector(deadline: number): Promise<void> {
    while (Date.now() < deadline && this.report.failures.length === 0) {
      try {
        const run = await this.collect(pick(this.urls));
        if (run === null) await sleep(50);
      } catch (error) {
        this.fail(error instanceof Error ? error.message : String(error));
      }
    }
  }

  /** One GC run to its end; null when another run held the lease. */
  async collect(url: string): Promise<{ blobsFreed: number } | null> {
    const started = await fetch(`${url}/api/v1/gc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grace: '1s' }) });
    if (started.status === 409) return null;
    if (started.status !== 202) throw new Error(`POST /api/v1/gc answered ${started.status}: ${await started.text()}`);
    let run = (await started.json()) as { id: string; status: string; blobsFreed: number; error: string | null };
    const until = Date.now() + 60_000;
    while (run.status === 'running') {
      if (Date.now() > until) throw new Error(`gc run ${run.id} still running after 60 s`);
      await sleep(25);
      run = (await (await fetch(`${pick(this.urls)}/api/v1/gc/runs/${run.id}`)).json()) as typeof run;
    }
    if (run.status !== 'succeeded') throw new Error(`gc run ${run.id} ${run.status}: ${run.error}`);
    this.report.gcRuns += 1;
    this.report.blobsFreed += run.blobsFreed;
    return run;
  }

  private image(layers: Blob[]): { manifest: Buffer; digest: string; blobs: Blob[] } {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', author: randomBytes(8).toString('hex'), rootfs: { type: 'layers', diff_ids: [] } }));
    const blobs = [{ digest: sha256(config), content: config }, ...layers];
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: blobs[0]!.digest, size: config.length },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.content.length })),
      }),
    );
    return { manifest, digest: sha256(manifest), blobs };
  }

  /** Pushes an image, tagged, or by digest when `tag` is null; resolves to its digest. */
  private async pushImage(repository: string, tag: string | null, layers?: Blob[]): Promise<string> {
    const chosen = layers ?? [pick(this.shared), pick(this.shared), ...(Math.random() < 0.5 ? [this.unique()] : [])];
    const image = this.image([...new Map(chosen.map((l) => [l.digest, l])).values()]);
    const url = pick(this.urls);
    // Like real clients: skip blobs that HEAD says the repository has (the classic GC race).
    for (const blob of image.blobs) {
      if (Math.random() < 0.7 && (await fetch(`${url}/v2/${repository}/blobs/${blob.digest}`, { method: 'HEAD' })).status === 200) continue;
      await this.uploadBlob(pick(this.urls), repository, blob);
    }
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(`${pick(this.urls)}/v2/${repository}/manifests/${tag ?? image.digest}`, { method: 'PUT', body: new Uint8Array(image.manifest), headers: { 'content-type': MANIFEST } });
      if (res.status === 201) break;
      const body = await res.text();
      if (res.status === 400 && body.includes('MANIFEST_BLOB_UNKNOWN') && attempt < 8) {
        // A blob it skipped was collected before the manifest referenced it: an error, never a
        // manifest pointing at nothing. Push the blobs again, as a client retrying would.
        this.report.blobRaces += 1;
        for (const blob of image.blobs) await this.uploadBlob(pick(this.urls), repository, blob);
        continue;
      }
      throw new Error(`manifest PUT ${repository}:${tag} answered ${res.status}: ${body}`);
    }
    this.report.pushes += 1;
    return image.digest;
  }

  private unique(): Blob {
    const content = randomBytes(1024 + Math.floor(Math.random() * 4096));
    return { digest: sha256(content), content };
  }

  /** Monolithic (POST ?digest=) or a session completed with the body (POST, PUT ?digest=). */
  private async uploadBlob(url: string, repository: string, blob: Blob): Promise<void> {
    if (Math.random() < 0.5) {
      const res = await fetch(`${url}/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, { method: 'POST', body: new Uint8Array(blob.content), headers: { 'content-type': 'application/octet-stream' } });
      if (res.status !== 201) throw new Error(`monolithic upload to ${repository} answered ${res.status}: ${await res.text()}`);
      return;
    }
    const session = await fetch(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    if (session.status !== 202) throw new Error(`upload start answered ${session.status}`);
    const location = new URL(session.headers.get('location')!, url);
    const half = Math.floor(blob.content.length / 2);
    const patch = await fetch(`${pick(this.urls)}${location.pathname}${location.search}`, { method: 'PATCH', body: new Uint8Array(blob.content.subarray(0, half)), headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${half - 1}` } });
    if (patch.status !== 202) throw new Error(`upload PATCH answered ${patch.status}: ${await patch.text()}`);
    const next = new URL(patch.headers.get('location')!, url);
    next.searchParams.set('digest', blob.digest);
    const put = await fetch(`${pick(this.urls)}${next.pathname}${next.search}`, { method: 'PUT', body: new Uint8Array(blob.content.subarray(half)), headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`upload PUT answered ${put.status}: ${await put.text()}`);
  }

  /** Mounts a shared layer from another repository and uses it right away without uploading. */
  private async mountAndUse(repository: string): Promise<void> {
    const layer = pick(this.shared);
    const from = pick(REPOS.filter((r) => r !== repository));
    const res = await fetch(`${pick(this.urls)}/v2/${repository}/blobs/uploads/?mount=${layer.digest}&from=${from}`, { method: 'POST' });
    if (res.status === 202) {
      // Not mountable (absent there, or queued for deletion): the client would upload instead.
      await fetch(new URL(res.headers.get('location')!, this.urls[0]), { method: 'DELETE' });
      return;
    }
    if (res.status !== 201) throw new Error(`mount answered ${res.status}: ${await res.text()}`);
    this.report.mounts += 1;
    await this.pushImage(repository, pick(TAGS), [layer]);
  }

  private async deleteTag(repository: string, tag: string): Promise<void> {
    const res = await fetch(`${pick(this.urls)}/v2/${repository}/manifests/${tag}`, { method: 'DELETE' });
    if (res.status === 202) this.report.tagDeletes += 1;
    else if (res.status !== 404) throw new Error(`tag delete answered ${res.status}: ${await res.text()}`);
  }

  /**
   * Garbage for the collector: loose blobs (some pushed again and again, so that they are queued
   * for deletion or being deleted while pushed: the rescue), and untagged images with such a
   * layer, pulled whole right after their push and then deleted.
   */
  private async pushGarbage(repository: string): Promise<void> {
    const roll = Math.random();
    if (roll < 0.35) {
      await this.uploadBlob(pick(this.urls), repository, pick(this.recycled));
    } else if (roll < 0.6) {
      await this.uploadBlob(pick(this.urls), repository, this.unique());
    } else {
      const digest = await this.pushImage(repository, null, [pick(this.recycled), ...(Math.random() < 0.5 ? [pick(this.shared)] : [])]);
      await this.pullTag(pick(this.urls), repository, digest, true);
      const del = await fetch(`${pick(this.urls)}/v2/${repository}/manifests/${digest}`, { method: 'DELETE' });
      if (del.status !== 202) throw new Error(`manifest delete answered ${del.status}`);
    }
    this.report.garbagePushed += 1;
  }

  /**
   * Pulls `repository:reference` and checks every byte against its digest. A tag that does not
   * exist (deleted, or never pushed) is fine unless `required`; a manifest that exists must pull whole.
   */
  async pullTag(url: string, repository: string, reference: string, required: boolean): Promise<boolean> {
    const res = await fetch(`${url}/v2/${repository}/manifests/${reference}`, { headers: { accept: MANIFEST } });
    if (res.status === 404 && !required) return false;
    if (res.status !== 200) throw new Error(`manifest ${repository}:${reference} from ${url} answered ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    if (reference.startsWith('sha256:') && sha256(body) !== reference) throw new Error(`manifest ${repository}@${reference} has digest ${sha256(body)}`);
    const manifest = JSON.parse(body.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
    for (const descriptor of [manifest.config, ...manifest.layers]) {
      const blob = await fetch(`${pick(this.urls)}/v2/${repository}/blobs/${descriptor.digest}`);
      const bytes = Buffer.from(await blob.arrayBuffer());
      if (blob.status !== 200 || sha256(bytes) !== descriptor.digest || bytes.length !== descriptor.size) {
        throw new Error(`blob ${descriptor.digest} of ${repository}:${reference} (manifest ${sha256(body)}): status ${blob.status}, ${bytes.length} bytes`);
      }
    }
    this.report.pulls += 1;
    return true;
  }

  /**
   * After the run: one more GC (past the grace period), then every tagged image and every
   * tag-history entry (all inside the 14-day window) must pull whole through every node, and the
   * dry run must find nothing left. Resolves to how many images were checked.
   */
  async verify(): Promise<{ images: number; historyEntries: number; left: number }> {
    await sleep(1500);
    while ((await this.collect(this.urls[0]!)) === null) await sleep(200);
    let images = 0;
    let historyEntries = 0;
    for (const repository of REPOS) {
      const tags = ((await (await fetch(`${this.urls[0]}/v2/${repository}/tags/list`)).json()) as { tags: string[] | null }).tags ?? [];
      for (const tag of tags) for (const url of this.urls) if (await this.pullTag(url, repository, tag, true)) images += 1;
      for (const tag of TAGS) {
        const history = await fetch(`${this.urls[0]}/api/v1/repositories/${repository}/-/tags/${tag}/history`);
        if (history.status === 404) continue;
        const items = ((await history.json()) as { items: { digest: string | null; inWindow: boolean }[] }).items;
        for (const digest of new Set(items.filter((i) => i.inWindow && i.digest).map((i) => i.digest!))) {
          await this.pullTag(pick(this.urls), repository, digest, true);
          historyEntries += 1;
        }
      }
    }
    const preview = (await (await fetch(`${this.urls[0]}/api/v1/gc/preview?grace=1s`)).json()) as { count: number };
    return { images, historyEntries, left: preview.count };
  }
}
