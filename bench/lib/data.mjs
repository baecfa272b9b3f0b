// Generated content: large blobs are a random 8 MiB buffer repeated, streamed and never held
// whole in memory; their digest is computed once by streaming the same bytes through SHA-256.
import { createHash, randomBytes } from 'node:crypto';
import { MiB } from './util.mjs';

export const sha256 = (buf) => 'sha256:' + createHash('sha256').update(buf).digest('hex');

/** A blob of `size` bytes made of one random `unit`-sized buffer repeated. */
export function repeatingBlob(size, unit = 8 * MiB) {
  const buf = randomBytes(Math.min(unit, size));
  const blob = {
    size,
    digest: null,
    /** Yields the bytes in [from, to) as views of the shared buffer (never copies). */
    *chunks(from = 0, to = size) {
      let pos = from;
      while (pos < to) {
        const off = pos % buf.length;
        const n = Math.min(buf.length - off, to - pos);
        yield buf.subarray(off, off + n);
        pos += n;
      }
    },
    /** Streams the bytes once through SHA-256 (yielding to the event loop between pieces). */
    async computeDigest() {
      const h = createHash('sha256');
      let i = 0;
      for (const c of blob.chunks()) {
        h.update(c);
        if (++i % 4 === 0) await new Promise((r) => setImmediate(r));
      }
      blob.digest = 'sha256:' + h.digest('hex');
      return blob.digest;
    },
  };
  return blob;
}

/** A small in-memory blob. */
export function smallBlob(buf) {
  return { size: buf.length, digest: sha256(buf), buf, *chunks(from = 0, to = buf.length) { yield buf.subarray(from, to); } };
}

export const MT = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

/** The Accept header containerd/Docker send when pulling by tag. */
export const PULL_ACCEPT = [
  MT.manifest,
  MT.index,
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** A small but valid OCI image config. */
export function imageConfig(label) {
  return Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'], Labels: { bench: label } },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [{ created: '2024-01-01T00:00:00Z', created_by: 'stowage bench' }],
  }));
}

/** OCI image manifest JSON (Buffer) for a config and layers ({digest,size}). */
export function imageManifest(config, layers, annotations) {
  const m = {
    schemaVersion: 2,
    mediaType: MT.manifest,
    config: { mediaType: MT.config, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: MT.layer, digest: l.digest, size: l.size })),
  };
  if (annotations) m.annotations = annotations;
  return Buffer.from(JSON.stringify(m));
}
