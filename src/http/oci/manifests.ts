import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../../registry/errors.js';
import { maxManifestBytes } from '../../registry/manifest-parser.js';
import { parseReference, type Reference } from '../../registry/manifests.js';
import { isTag } from '../../registry/names.js';
import type { ManifestRecord } from '../../metadata/metadata-store.js';
import { writeContextOf } from '../../events/context.js';
import { contentLength, type OciContext } from './context.js';

export async function headManifest({ reply, registry, name, param }: OciContext) {
  const manifest = await registry.manifests.get(name, existingReference(param));
  return reply.headers(manifestHeaders(manifest)).send();
}

export async function getManifest(ctx: OciContext) {
  const manifest = await ctx.registry.manifests.get(ctx.name, existingReference(ctx.param));
  ctx.pulled = manifest;
  return ctx.reply.headers(manifestHeaders(manifest)).send(manifest.content);
}

export async function putManifest({ request, reply, registry, name, param, auth }: OciContext) {
  const reference = parseReference(param);
  const content = await readManifestBody(request);
  const contentType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const manifest = await registry.manifests.put(name, reference, content, contentType, writeContextOf(auth.actor, registry.node));
  reply.code(201).headers({
    location: `/v2/${name}/manifests/${manifest.digest}`,
    'docker-content-digest': manifest.digest,
    'content-length': 0,
  });
  if (manifest.subject) reply.header('oci-subject', manifest.subject);
  return reply.send();
}

export async function deleteManifest({ reply, registry, name, param, auth }: OciContext) {
  await registry.manifests.delete(name, existingReference(param), writeContextOf(auth.actor, registry.node));
  return reply.code(202).header('content-length', 0).send();
}

/**
 * The reference of a manifest to read or delete. A tag that the grammar forbids cannot exist,
 * so it is unknown (404), as for distribution and the conformance suite; pushing to one is
 * TAG_INVALID.
 */
function existingReference(param: string): Reference {
  if (!param.includes(':') && !isTag(param)) {
    throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown: not a valid tag', { tag: param.slice(0, 200) });
  }
  return parseReference(param);
}

function manifestHeaders(manifest: ManifestRecord): Record<string, string | number> {
  return {
    'content-type': manifest.mediaType,
    'content-length': manifest.size,
    'docker-content-digest': manifest.digest,
    etag: `"${manifest.digest}"`,
  };
}

/** Reads the (small, bounded) manifest body; bigger than the limit is a 413 without reading on. */
async function readManifestBody(request: FastifyRequest): Promise<Buffer> {
  const tooLarge = () =>
    new RegistryError('MANIFEST_TOO_LARGE', `manifests are limited to ${maxManifestBytes} bytes`, { limit: maxManifestBytes });
  const declared = contentLength(request);
  if (declared !== undefined && declared > maxManifestBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request.raw as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxManifestBytes) {
      request.raw.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  if (size === 0) throw new RegistryError('MANIFEST_INVALID', 'the request has no manifest in its body');
  return Buffer.concat(chunks, size);
}
