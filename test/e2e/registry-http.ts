// Plain-HTTP checks of what a registry holds, independent of the clients under test.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ACCEPT_ALL_MANIFESTS, type Descriptor, type ImageIndex } from '../support/images.js';

export interface Registry {
  url: string;
  /** Authorization header for the checks (e.g. Basic, when the registry takes it on /v2/). */
  authorization?: string;
}

function auth(reg: Registry, headers: Record<string, string> = {}): Record<string, string> {
  return reg.authorization ? { ...headers, authorization: reg.authorization } : headers;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface ManifestResponse {
  status: number;
  digest: string | null;
  contentType: string | null;
  body: Buffer;
}

export async function getManifest(reg: Registry, name: string, reference: string, method: 'GET' | 'HEAD' = 'GET'): Promise<ManifestResponse> {
  const res = await fetch(`${reg.url}/v2/${name}/manifests/${reference}`, { method, headers: auth(reg, { Accept: ACCEPT_ALL_MANIFESTS }) });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, digest: res.headers.get('docker-content-digest'), contentType: res.headers.get('content-type'), body };
}

export function headManifest(reg: Registry, name: string, reference: string): Promise<ManifestResponse> {
  return getManifest(reg, name, reference, 'HEAD');
}

export async function headBlob(reg: Registry, name: string, digest: string): Promise<{ status: number; size: number | null; digest: string | null }> {
  const res = await fetch(`${reg.url}/v2/${name}/blobs/${digest}`, { method: 'HEAD', headers: auth(reg) });
  await res.arrayBuffer();
  const length = res.headers.get('content-length');
  return { status: res.status, size: length === null ? null : Number(length), digest: res.headers.get('docker-content-digest') };
}

export async function getBlob(reg: Registry, name: string, digest: string): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(`${reg.url}/v2/${name}/blobs/${digest}`, { headers: auth(reg) });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

export async function getJson<T>(reg: Registry, path: string): Promise<{ status: number; headers: Headers; json: T | undefined; text: string }> {
  const res = await fetch(`${reg.url}${path}`, { headers: auth(reg) });
  const text = await res.text();
  let json: T | undefined;
  try {
    json = JSON.parse(text) as T;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

export async function referrers(
  reg: Registry,
  name: string,
  digest: string,
  artifactType?: string,
): Promise<{ status: number; contentType: string | null; filtersApplied: string | null; index: ImageIndex | undefined; text: string }> {
  const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
  const r = await getJson<ImageIndex>(reg, `/v2/${name}/referrers/${digest}${query}`);
  return { status: r.status, contentType: r.headers.get('content-type'), filtersApplied: r.headers.get('oci-filters-applied'), index: r.json, text: r.text };
}

export interface TarFile {
  size: number;
  digest: string;
}

export interface BlobCheck {
  status: number;
  /** Digest and size of the bytes received. */
  digest: string;
  size: number;
  /** Digest of the decompressed stream (the diff ID), when the blob is gzip. */
  diffId?: string;
  /** Regular files of the layer tar, by path without a leading "./" or "/". */
  files?: Map<string, TarFile>;
}

/**
 * Streams a blob, hashing it; when `gzipTar`, also gunzips it, hashes the tar stream (diff ID) and
 * hashes every regular file in it. Nothing is buffered beyond one chunk.
 */
export async function streamBlob(reg: Registry, name: string, digest: string, gzipTar: boolean): Promise<BlobCheck> {
  const res = await fetch(`${reg.url}/v2/${name}/blobs/${digest}`, { headers: auth(reg) });
  if (!res.ok || !res.body) {
    await res.arrayBuffer().catch(() => undefined);
    return { status: res.status, digest: '', size: 0 };
  }
  const outer = createHash('sha256');
  let size = 0;
  const source = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  if (!gzipTar) {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      outer.update(chunk);
      size += chunk.length;
    }
    return { status: res.status, digest: `sha256:${outer.digest('hex')}`, size };
  }
  const gunzip = createGunzip();
  const inner = createHash('sha256');
  const scanner = new TarScanner();
  const feeding = (async () => {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      outer.update(chunk);
      size += chunk.length;
      if (!gunzip.write(chunk)) await new Promise((r) => gunzip.once('drain', r));
    }
    gunzip.end();
  })();
  for await (const chunk of gunzip as AsyncIterable<Buffer>) {
    inner.update(chunk);
    scanner.push(chunk);
  }
  await feeding;
  return {
    status: res.status,
    digest: `sha256:${outer.digest('hex')}`,
    size,
    diffId: `sha256:${inner.digest('hex')}`,
    files: scanner.files,
  };
}

/** A minimal streaming tar reader (ustar, pax and GNU long names) that hashes regular files. */
export class TarScanner {
  readonly files = new Map<string, TarFile>();
  private header = Buffer.alloc(0);
  private remaining = 0; // data bytes left in the current entry
  private padding = 0; // padding bytes left after the data
  private current: { name: string; kind: 'file' | 'pax' | 'longname' | 'skip'; hash?: ReturnType<typeof createHash>; size: number; meta?: Buffer[] } | undefined;
  private paxPath: string | undefined;
  private longName: string | undefined;
  private ended = false;

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.ended) {
      if (this.remaining > 0 && this.current) {
        const n = Math.min(this.remaining, chunk.length - offset);
        const part = chunk.subarray(offset, offset + n);
        if (this.current.kind === 'file') this.current.hash?.update(part);
        else if (this.current.kind !== 'skip') this.current.meta?.push(Buffer.from(part));
        this.remaining -= n;
        offset += n;
        if (this.remaining === 0) this.finishEntry();
        continue;
      }
      if (this.padding > 0) {
        const n = Math.min(this.padding, chunk.length - offset);
        this.padding -= n;
        offset += n;
        continue;
      }
      const need = 512 - this.header.length;
      const n = Math.min(need, chunk.length - offset);
      this.header = Buffer.concat([this.header, chunk.subarray(offset, offset + n)]);
      offset += n;
      if (this.header.length === 512) {
        const block = this.header;
        this.header = Buffer.alloc(0);
        this.startEntry(block);
      }
    }
  }

  private startEntry(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    const str = (from: number, len: number): string => {
      const raw = block.subarray(from, from + len);
      const nul = raw.indexOf(0);
      return raw.subarray(0, nul === -1 ? len : nul).toString('utf8');
    };
    let size: number;
    if ((block[124] ?? 0) & 0x80) {
      size = 0;
      for (let i = 125; i < 136; i++) size = size * 256 + (block[i] ?? 0);
    } else {
      size = parseInt(str(124, 12).trim() || '0', 8);
    }
    const type = String.fromCharCode(block[156] ?? 0x30);
    const magic = str(257, 6);
    const prefix = magic.startsWith('ustar') ? str(345, 155) : '';
    let name = prefix ? `${prefix}/${str(0, 100)}` : str(0, 100);
    if (this.longName !== undefined) name = this.longName;
    if (this.paxPath !== undefined) name = this.paxPath;
    let kind: 'file' | 'pax' | 'longname' | 'skip';
    if (type === 'x') kind = 'pax';
    else if (type === 'L') kind = 'longname';
    else if (type === '0' || type === '\0' || type === '7') kind = 'file';
    else kind = 'skip';
    if (kind === 'file' || kind === 'skip') {
      this.paxPath = undefined;
      this.longName = undefined;
    }
    this.current = { name: name.replace(/^(\.\/|\/)+/, ''), kind, size, meta: [], hash: kind === 'file' ? createHash('sha256') : undefined };
    this.remaining = size;
    this.padding = (512 - (size % 512)) % 512;
    if (size === 0) this.finishEntry();
  }

  private finishEntry(): void {
    const entry = this.current;
    this.current = undefined;
    if (!entry) return;
    if (entry.kind === 'file') {
      this.files.set(entry.name, { size: entry.size, digest: `sha256:${entry.hash?.digest('hex')}` });
    } else if (entry.kind === 'pax') {
      const text = Buffer.concat(entry.meta ?? []).toString('utf8');
      for (const m of text.matchAll(/\d+ path=([^\n]*)\n/g)) this.paxPath = m[1];
    } else if (entry.kind === 'longname') {
      this.longName = Buffer.concat(entry.meta ?? []).toString('utf8').replace(/\0+$/, '');
    }
  }
}

/** All blobs a manifest refers to (config and layers). */
export function blobsOf(manifest: { config: Descriptor; layers: Descriptor[] }): Descriptor[] {
  return [manifest.config, ...manifest.layers];
}

export { sha256 };
