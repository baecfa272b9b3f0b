import { createHash } from 'node:crypto';
import type { NewManifest } from '../../src/metadata/metadata-store.js';

/** A small OCI image manifest for metadata-store tests: its content names `seed`, its digest is real. */
export function testManifest(seed: string, blobs: string[]): NewManifest {
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, seed }));
  return {
    digest: `sha256:${createHash('sha256').update(content).digest('hex')}`,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: content.length,
    content,
    artifactType: null,
    subject: null,
    annotations: null,
    blobs,
    children: [],
  };
}
