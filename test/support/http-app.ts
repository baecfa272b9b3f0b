// An in-process Stowage for HTTP unit tests: the real app (routes, domain, filesystem blob store,
// SQLite metadata) on a fresh temporary data directory, driven through Fastify's inject().
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { expect } from 'vitest';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/config/load.js';
import { mediaTypes } from '../../src/registry/media-types.js';

export { mediaTypes };
export type Response = LightMyRequestResponse;
type Headers = Record<string, string>;

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function sha512(data: Buffer | string): string {
  return `sha512:${createHash('sha512').update(data).digest('hex')}`;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

export function descriptorOf(mediaType: string, content: Buffer, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: sha256(content), size: content.length, ...extra };
}

/** The OCI empty JSON blob `{}`, used as the config of artifacts. */
export const emptyConfig = Buffer.from('{}');
export const emptyConfigDescriptor = descriptorOf(mediaTypes.ociEmpty, emptyConfig);

/** A small, unique image config. */
export function configBlob(label = Math.random().toString(36).slice(2)): Buffer {
  return Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', author: label, rootfs: { type: 'layers', diff_ids: [] } }));
}

/** The JSON bytes of a manifest, pretty-printed so that its digest depends on the exact bytes. */
export function manifestBytes(manifest: object): Buffer {
  return Buffer.from(JSON.stringify(manifest, null, '\t'));
}

export function ociManifest(options: {
  config: Descriptor;
  layers?: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}): Buffer {
  return manifestBytes({
    schemaVersion: 2,
    mediaType: mediaTypes.ociManifest,
    ...(options.artifactType ? { artifactType: options.artifactType } : {}),
    config: options.config,
    layers: options.layers ?? [],
    ...(options.subject ? { subject: options.subject } : {}),
    ...(options.annotations ? { annotations: options.annotations } : {}),
  });
}

export function ociIndex(options: { manifests: Descriptor[]; subject?: Descriptor; artifactType?: string; annotations?: Record<string, string> }): Buffer {
  return manifestBytes({
    schemaVersion: 2,
    mediaType: mediaTypes.ociIndex,
    ...(options.artifactType ? { artifactType: options.artifactType } : {}),
    manifests: options.manifests,
    ...(options.subject ? { subject: options.subject } : {}),
    ...(options.annotations ? { annotations: options.annotations } : {}),
  });
}

/** The first entry of an OCI error response, after checking the status and the body's shape. */
export function ociError(response: Response, status: number, code: string): { code: string; message: string; detail: unknown } {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const body = response.json() as { errors: { code: string; message: string; detail: unknown }[] };
  expect(Array.isArray(body.errors)).toBe(true);
  const [error] = body.errors;
  expect(error).toBeDefined();
  expect(Object.keys(error!).sort()).toEqual(['code', 'detail', 'message']);
  expect(error!.code).toBe(code);
  expect(typeof error!.message).toBe('string');
  return error!;
}

export interface PushedImage {
  digest: string;
  manifest: Buffer;
  descriptor: Descriptor;
  config: Buffer;
  layers: Buffer[];
}

/** Made by createTestApp(); `app` is replaced by restart(). */
export class TestApp {
  constructor(
    public app: App,
    readonly dataDir: string,
    readonly settings: AppSettings = {},
  ) {}

  inject(options: InjectOptions): Promise<Response> {
    return this.app.http.inject(options);
  }

  get(url: string, headers: Headers = {}): Promise<Response> {
    return this.inject({ method: 'GET', url, headers });
  }

  head(url: string, headers: Headers = {}): Promise<Response> {
    return this.inject({ method: 'HEAD', url, headers });
  }

  delete(url: string): Promise<Response> {
    return this.inject({ method: 'DELETE', url });
  }

  post(url: string, body?: Buffer, headers: Headers = {}): Promise<Response> {
    return this.inject({ method: 'POST', url, payload: body, headers });
  }

  patch(url: string, body: Buffer, headers: Headers = {}): Promise<Response> {
    return this.inject({ method: 'PATCH', url, payload: body, headers: { 'content-type': 'application/octet-stream', ...headers } });
  }

  put(url: string, body?: Buffer, headers: Headers = {}): Promise<Response> {
    return this.inject({ method: 'PUT', url, payload: body, headers });
  }

  /** The tags of an existing repository, as the tag list answers them. */
  async tags(repository: string): Promise<string[]> {
    const response = await this.get(`/v2/${repository}/tags/list`);
    expect(response.statusCode, response.body).toBe(200);
    return response.json().tags;
  }

  /** Starts an upload session; resolves to its Location. */
  async startUpload(repository: string): Promise<string> {
    const response = await this.post(`/v2/${repository}/blobs/uploads/`);
    expect(response.statusCode).toBe(202);
    return location(response);
  }

  /** Pushes a blob in one POST with ?digest= (sha256 unless given). Resolves to its digest. */
  async pushBlob(repository: string, content: Buffer, digest = sha256(content)): Promise<string> {
    const response = await this.post(`/v2/${repository}/blobs/uploads/?digest=${digest}`, content, { 'content-type': 'application/octet-stream' });
    expect(response.statusCode, response.body).toBe(201);
    expect(response.headers['docker-content-digest']).toBe(digest);
    return digest;
  }

  /** Pushes a blob as PATCH chunks with Content-Range, then PUT ?digest= without a body. */
  async pushBlobChunked(repository: string, content: Buffer, chunkSize: number, digest = sha256(content)): Promise<string> {
    let url = await this.startUpload(repository);
    for (let start = 0; start < content.length; start += chunkSize) {
      const chunk = content.subarray(start, start + chunkSize);
      const response = await this.patch(url, chunk, { 'content-range': `${start}-${start + chunk.length - 1}` });
      expect(response.statusCode, response.body).toBe(202);
      expect(response.headers.range).toBe(`0-${start + chunk.length - 1}`);
      url = location(response);
    }
    const response = await this.put(withQuery(url, { digest }));
    expect(response.statusCode, response.body).toBe(201);
    return digest;
  }

  /** PUTs a manifest (bytes as given) and returns the response. */
  putManifest(repository: string, reference: string, manifest: Buffer, mediaType: string = mediaTypes.ociManifest): Promise<Response> {
    return this.put(`/v2/${repository}/manifests/${reference}`, manifest, { 'content-type': mediaType });
  }

  /** PUTs a manifest that must be accepted; resolves to its digest. */
  async pushManifest(repository: string, reference: string, manifest: Buffer, mediaType: string = mediaTypes.ociManifest): Promise<string> {
    const response = await this.putManifest(repository, reference, manifest, mediaType);
    expect(response.statusCode, response.body).toBe(201);
    const digest = sha256(manifest);
    expect(response.headers['docker-content-digest']).toBe(digest);
    return digest;
  }

  /** Pushes a config, the given layers (or one random layer) and an OCI image manifest. */
  async pushImage(
    repository: string,
    reference: string,
    options: { layers?: Buffer[]; subject?: Descriptor; annotations?: Record<string, string> } = {},
  ): Promise<PushedImage> {
    const config = configBlob();
    const layers = options.layers ?? [Buffer.from(`layer ${Math.random()}`)];
    await this.pushBlob(repository, config);
    for (const layer of layers) await this.pushBlob(repository, layer);
    const manifest = ociManifest({
      config: descriptorOf('application/vnd.oci.image.config.v1+json', config),
      layers: layers.map((layer) => descriptorOf('application/vnd.oci.image.layer.v1.tar+gzip', layer)),
      subject: options.subject,
      annotations: options.annotations,
    });
    const digest = await this.pushManifest(repository, reference, manifest);
    return { digest, manifest, descriptor: descriptorOf(mediaTypes.ociManifest, manifest), config, layers };
  }

  /** Closes the app and opens a new one on the same data directory (a server restart). */
  async restart(): Promise<void> {
    await this.app.close();
    this.app = await openApp(this.dataDir, this.settings);
  }

  /**
   * Another app on the same data directory and settings, as a second worker process or node would
   * be (the caller closes it).
   */
  openSibling(): Promise<App> {
    return openApp(this.dataDir, this.settings);
  }

  /** Ids of the upload staging areas present in the blob store, sorted. */
  async stagedUploads(): Promise<string[]> {
    const ids: string[] = [];
    for await (const upload of this.app.blobStore.listUploads()) ids.push(upload.id);
    return ids.sort();
  }

  /**
   * Sends a request over a real socket with the path exactly as given (inject() would resolve
   * `..` segments before the server sees them).
   */
  async raw(method: string, path: string): Promise<{ status: number; body: string }> {
    if (!this.app.http.server.listening) await this.app.http.listen({ host: '127.0.0.1', port: 0 });
    const { port } = this.app.http.server.address() as { port: number };
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { 'content-length': 0 } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  async cleanup(): Promise<void> {
    await this.app.close();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** Settings other than the defaults of createTestApp(), by config key and as environment. */
export interface AppSettings {
  flags?: Record<string, string>;
  env?: Record<string, string>;
}

/**
 * A Stowage app on a fresh temporary data directory (removed by cleanup()), with open access
 * unless `settings` says otherwise (e.g. flags { 'auth.mode': 'token' }).
 */
export async function createTestApp(settings: AppSettings = {}): Promise<TestApp> {
  const dataDir = await mkdtemp(join(tmpdir(), 'stowage-http-'));
  return new TestApp(await openApp(dataDir, settings), dataDir, settings);
}

/** The Location header of a response (which must have one). */
export function location(response: Response): string {
  const value = response.headers.location;
  expect(typeof value, `no Location in ${response.statusCode} ${response.body}`).toBe('string');
  return value as string;
}

/** Adds query parameters to a URL that may already have some. */
export function withQuery(url: string, params: Record<string, string>): string {
  return `${url}${url.includes('?') ? '&' : '?'}${new URLSearchParams(params).toString()}`;
}

async function openApp(dataDir: string, settings: AppSettings): Promise<App> {
  // Open access by default: these suites test the registry API (test/auth/ tests access control).
  const config = loadConfig({ flags: { dataDir, 'log.requests': 'false', 'auth.mode': 'none', ...settings.flags }, env: settings.env ?? {} });
  return createApp(config, pino({ level: 'silent' }));
}
