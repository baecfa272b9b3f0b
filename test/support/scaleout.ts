// Several `stowage serve` processes sharing the run's PostgreSQL (a database of their own) and
// Ceph RGW (a bucket of their own): the scale-out deployment, on one machine.
import { rmSync } from 'node:fs';
import { createDatabase, scaleOutEnv, uniqueBucket, type TestDatabase } from './services.js';
import { startStowage, type RunningStowage } from './stowage.js';
import { descriptorOf, mediaTypes, ociManifest, sha256, type Descriptor } from './http-app.js';

export interface ScaleOut {
  nodes: RunningStowage[];
  database: TestDatabase;
  bucket: string;
  /** Environment of the nodes (to start one more the same way). */
  env: Record<string, string>;
  startNode(extraEnv?: Record<string, string>): Promise<RunningStowage>;
  stop(): Promise<void>;
}

/**
 * Starts `count` nodes at the same moment (so that they migrate the new database together, under
 * the advisory lock), each with one HTTP process and its own scratch data directory.
 */
export async function startScaleOut(label: string, count: number, extraEnv: Record<string, string> = {}): Promise<ScaleOut> {
  const database = await createDatabase(label);
  const bucket = uniqueBucket(label);
  const env = scaleOutEnv(database.url, bucket, { STOWAGE_WORKERS: '1', ...extraEnv });
  const all: RunningStowage[] = [];
  const startNode = async (more: Record<string, string> = {}) => {
    const node = await startStowage({ env: { ...env, ...more } });
    all.push(node);
    return node;
  };
  const started = await Promise.allSettled(Array.from({ length: count }, () => startNode()));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const stop = async () => {
    await Promise.all(all.map((node) => node.stop()));
    for (const node of all) rmSync(node.dataDir, { recursive: true, force: true });
    await database.drop();
  };
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { nodes: all.slice(0, count), database, bucket, env, startNode, stop };
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP pushes and pulls
// ---------------------------------------------------------------------------------------------

/** Uploads a blob in one request (POST ?digest=). */
export async function pushBlob(url: string, repository: string, content: Buffer): Promise<string> {
  const digest = sha256(content);
  const res = await fetch(`${url}/v2/${repository}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    body: bytes(content),
    headers: { 'content-type': 'application/octet-stream' },
  });
  if (res.status !== 201) throw new Error(`blob push to ${url} answered ${res.status}: ${await res.text()}`);
  return digest;
}

export async function putManifest(url: string, repository: string, reference: string, manifest: Buffer, mediaType: string = mediaTypes.ociManifest): Promise<Response> {
  return fetch(`${url}/v2/${repository}/manifests/${reference}`, { method: 'PUT', body: bytes(manifest), headers: { 'content-type': mediaType } });
}

export interface TestImage {
  manifest: Buffer;
  digest: string;
  blobs: { descriptor: Descriptor; content: Buffer }[];
}

/** An image of a config and `layers` small random layers, not pushed yet. */
export function makeImage(label: string, layers: Buffer[]): TestImage {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', author: label, rootfs: { type: 'layers', diff_ids: [] } }));
  const configDescriptor = descriptorOf('application/vnd.oci.image.config.v1+json', config);
  const layerDescriptors = layers.map((layer) => descriptorOf('application/vnd.oci.image.layer.v1.tar+gzip', layer));
  const manifest = ociManifest({ config: configDescriptor, layers: layerDescriptors });
  return {
    manifest,
    digest: sha256(manifest),
    blobs: [{ descriptor: configDescriptor, content: config }, ...layerDescriptors.map((descriptor, i) => ({ descriptor, content: layers[i]! }))],
  };
}

/** Pushes an image's blobs through `blobNodes` (in turn) and its manifest through `manifestNode`. */
export async function pushImage(blobNodes: string[], manifestNode: string, repository: string, image: TestImage, tag?: string): Promise<void> {
  await Promise.all(image.blobs.map((blob, i) => pushBlob(blobNodes[i % blobNodes.length]!, repository, blob.content)));
  const res = await putManifest(manifestNode, repository, tag ?? image.digest, image.manifest);
  if (res.status !== 201) throw new Error(`manifest push answered ${res.status}: ${await res.text()}`);
}

/** Pulls an image by reference through `url`; checks every blob's bytes against its digest. */
export async function pullImage(url: string, repository: string, reference: string): Promise<{ digest: string; blobs: number }> {
  const res = await fetch(`${url}/v2/${repository}/manifests/${reference}`, { headers: { accept: mediaTypes.ociManifest } });
  if (res.status !== 200) throw new Error(`manifest ${repository}:${reference} from ${url} answered ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  const digest = sha256(body);
  if (res.headers.get('docker-content-digest') !== digest) throw new Error(`manifest digest header ${res.headers.get('docker-content-digest')} is not ${digest}`);
  const manifest = JSON.parse(body.toString()) as { config: Descriptor; layers: Descriptor[] };
  for (const descriptor of [manifest.config, ...manifest.layers]) {
    const blob = await fetch(`${url}/v2/${repository}/blobs/${descriptor.digest}`);
    const bytes = Buffer.from(await blob.arrayBuffer());
    if (blob.status !== 200 || sha256(bytes) !== descriptor.digest || bytes.length !== descriptor.size) {
      throw new Error(`blob ${descriptor.digest} of ${repository}:${reference} from ${url}: status ${blob.status}, ${bytes.length} bytes, digest ${sha256(bytes)}`);
    }
  }
  return { digest, blobs: manifest.layers.length + 1 };
}

/** The object-store requests a node has sent so far, by operation (from its /metrics). */
export async function objectStoreRequests(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/^stowage_object_store_requests_total\{operation="([^"]+)"\} (\d+)/gm)) {
    counts[match[1]!] = Number(match[2]);
  }
  return counts;
}

export function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** A Buffer as a fetch body (fetch's types want an ArrayBuffer-backed view). */
export function bytes(buffer: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(buffer.buffer as ArrayBuffer, buffer.byteOffset, buffer.length);
}
