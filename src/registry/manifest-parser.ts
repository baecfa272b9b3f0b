import { parseDigest, digestOf } from './digest.js';
import { RegistryError } from './errors.js';
import { dockerSchema1MediaTypes, isForeignLayer, manifestKinds, mediaTypes } from './media-types.js';
import type { NewManifest } from '../metadata/metadata-store.js';

/** The most a manifest may weigh; larger ones are refused with 413 (as the spec suggests). */
export const maxManifestBytes = 4 * 1024 * 1024;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

const genericContentTypes = new Set(['', 'application/json', 'application/octet-stream']);

/**
 * Validates the exact bytes of a pushed manifest against its media type and extracts what the
 * metadata records about it. `contentType` is the request's Content-Type (parameters removed).
 */
export function parseManifest(content: Buffer, contentType: string): NewManifest {
  const json = parseJson(content);
  const declared = typeof json.mediaType === 'string' ? json.mediaType : undefined;

  if (json.schemaVersion === 1 || dockerSchema1MediaTypes.has(contentType) || (declared && dockerSchema1MediaTypes.has(declared))) {
    throw invalid('Docker image manifest schema 1 is not supported (deprecated and unsigned); push schema 2 or OCI, e.g. with `skopeo copy --format v2s2` or `--format oci`');
  }
  if (json.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  if (declared && !genericContentTypes.has(contentType) && declared !== contentType) {
    throw invalid(`the manifest's mediaType ${declared} differs from the Content-Type ${contentType}`);
  }
  const mediaType = declared ?? (genericContentTypes.has(contentType) ? inferMediaType(json) : contentType);
  const kind = manifestKinds[mediaType];
  if (!kind) {
    throw invalid(`unsupported manifest media type ${mediaType}; supported: ${Object.keys(manifestKinds).join(', ')}`);
  }
  const isDocker = mediaType === mediaTypes.dockerManifest || mediaType === mediaTypes.dockerManifestList;
  if (isDocker && declared !== mediaType) throw invalid('Docker manifests must carry their mediaType field');

  const subject = json.subject === undefined ? null : descriptor(json.subject, 'subject').digest;
  const annotations = stringMap(json.annotations, 'annotations');
  const artifactType = optionalString(json.artifactType, 'artifactType');
  if (isDocker && (subject || artifactType)) throw invalid('subject and artifactType are only valid in OCI manifests');

  let blobs: string[] = [];
  let children: string[] = [];
  let configMediaType: string | null = null;
  if (kind === 'image') {
    const config = descriptor(json.config, 'config');
    configMediaType = config.mediaType;
    if (!Array.isArray(json.layers)) throw invalid('layers must be an array of descriptors');
    const layers = json.layers.map((layer, i) => descriptor(layer, `layers[${i}]`));
    if (artifactType !== null && config.mediaType === mediaTypes.ociEmpty && config.size !== 2) {
      throw invalid('the empty config descriptor must have size 2');
    }
    blobs = unique([config.digest, ...layers.filter((l) => !isForeignLayer(l.mediaType)).map((l) => l.digest)]);
  } else {
    if (!Array.isArray(json.manifests)) throw invalid('manifests must be an array of descriptors');
    children = unique(json.manifests.map((m, i) => descriptor(m, `manifests[${i}]`).digest));
  }

  return {
    digest: digestOf(content),
    mediaType,
    size: content.length,
    content,
    // The referrers API reports a manifest's artifactType, or else its config's media type.
    artifactType: artifactType ?? (kind === 'image' && !isDocker ? configMediaType : null),
    subject,
    annotations,
    blobs,
    children,
  };
}

function parseJson(content: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(content));
  } catch (error) {
    throw invalid(`manifest is not valid UTF-8 JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('manifest must be a JSON object');
  return value as Record<string, unknown>;
}

function inferMediaType(json: Record<string, unknown>): string {
  if (Array.isArray(json.manifests)) return mediaTypes.ociIndex;
  if (json.config !== undefined) return mediaTypes.ociManifest;
  throw invalid('cannot tell the manifest type: set mediaType or the Content-Type header');
}

function descriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`${where} must be a descriptor object`);
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw invalid(`${where}.mediaType must be a non-empty string`);
  if (typeof d.digest !== 'string' || !parseDigest(d.digest)) {
    throw invalid(`${where}.digest must be a canonical sha256 or sha512 digest`, { digest: d.digest ?? null });
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  stringMap(d.annotations, `${where}.annotations`);
  return d as unknown as Descriptor;
}

function stringMap(value: unknown, where: string): Record<string, string> | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw invalid(`${where} must be an object of strings`);
  }
  return value as Record<string, string>;
}

function optionalString(value: unknown, where: string): string | null {
  if (value === undefined) return null;
  if (typeof value !== 'string' || value === '') throw invalid(`${where} must be a non-empty string`);
  return value;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, detail);
}
