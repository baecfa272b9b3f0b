import { createHash } from 'node:crypto';
import { parseDigest } from './digest.js';
import { RegistryError } from './errors.js';
import { parseManifest } from './manifest-parser.js';
import { requireTag } from './names.js';
import { tagGuardFor } from './immutability.js';
import {
  ImmutableTagError,
  ManifestInUseError,
  MissingReferenceError,
  type ManifestRecord,
  type MetadataStore,
} from '../metadata/metadata-store.js';
import type { WriteContext } from '../metadata/events-store.js';

/** A manifest reference from a URL: a digest or a tag. */
export type Reference = { digest: string } | { tag: string };

export function parseReference(value: string): Reference {
  if (value.includes(':')) {
    const digest = parseDigest(value);
    if (!digest) throw new RegistryError('DIGEST_INVALID', 'invalid digest reference: expected sha256:<64 hex> or sha512:<128 hex>', { digest: value.slice(0, 200) });
    return { digest: value };
  }
  requireTag(value);
  return { tag: value };
}

/** Manifests, served from metadata without touching blob storage. */
export class ManifestService {
  constructor(private readonly metadata: MetadataStore) {}

  async get(repository: string, reference: Reference): Promise<ManifestRecord> {
    const manifest =
      'digest' in reference
        ? await this.metadata.manifests.get(repository, reference.digest)
        : await this.metadata.manifests.getByTag(repository, reference.tag);
    if (!manifest) {
      throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to this repository', 'digest' in reference ? { digest: reference.digest } : { tag: reference.tag });
    }
    return manifest;
  }

  /** Validates and stores a manifest; tags it when the reference is a tag. */
  /** `context`: who pushes, recorded in the tag's history and the push's events. */
  async put(repository: string, reference: Reference, content: Buffer, contentType: string, context?: WriteContext): Promise<ManifestRecord> {
    const manifest = parseManifest(content, contentType);
    if ('digest' in reference) {
      const algorithm = reference.digest.slice(0, reference.digest.indexOf(':'));
      const actual = `${algorithm}:${createHash(algorithm).update(content).digest('hex')}`;
      if (actual !== reference.digest) {
        throw new RegistryError('DIGEST_INVALID', `the manifest's digest is ${actual}, not the one in the URL`, { expected: reference.digest, actual });
      }
      manifest.digest = actual;
    }
    try {
      const tag = 'tag' in reference ? reference.tag : undefined;
      const guard = tag === undefined ? undefined : await tagGuardFor(this.metadata, repository);
      await this.metadata.manifests.put(repository, manifest, tag, { ...guard, context });
    } catch (error) {
      if (error instanceof ImmutableTagError) throw immutableDenied(error);
      if (error instanceof MissingReferenceError) {
        throw error.kind === 'blob'
          ? new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${error.digest} is not in this repository: push it first`, { digest: error.digest })
          : new RegistryError('MANIFEST_UNKNOWN', `manifest ${error.digest} is not in this repository: push the index's manifests first`, { digest: error.digest });
      }
      throw error;
    }
    return manifest;
  }

  /** Deleting by digest removes the manifest; deleting by tag removes only the tag. */
  async delete(repository: string, reference: Reference, context?: WriteContext): Promise<void> {
    const guard = await tagGuardFor(this.metadata, repository);
    if ('tag' in reference) {
      const rule = guard?.immutable(reference.tag) ?? null;
      const current = rule === null ? null : await this.metadata.tags.get(repository, reference.tag);
      if (rule !== null && current) throw immutableDenied(new ImmutableTagError(reference.tag, rule, current.digest));
      if (!(await this.metadata.tags.delete(repository, reference.tag, { context }))) {
        throw new RegistryError('MANIFEST_UNKNOWN', 'tag unknown to this repository', { tag: reference.tag });
      }
      return;
    }
    try {
      if (!(await this.metadata.manifests.delete(repository, reference.digest, { ...guard, context }))) {
        throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to this repository', { digest: reference.digest });
      }
    } catch (error) {
      if (error instanceof ImmutableTagError) throw immutableDenied(error);
      if (error instanceof ManifestInUseError) {
        throw new RegistryError('DENIED', `manifest is referenced by index ${error.index} in this repository; delete the index first`, { digest: error.digest, index: error.index }, undefined, 409);
      }
      throw error;
    }
  }
}

/** 403 DENIED naming the rule; the HTTP layer audit-logs it as a refusal. */
export class ImmutableTagDenied extends RegistryError {
  constructor(readonly refusal: ImmutableTagError) {
    super('DENIED', `${refusal.message}: it cannot be moved or deleted`, { tag: refusal.tag, rule: refusal.rule, digest: refusal.digest });
  }
}

function immutableDenied(error: ImmutableTagError): ImmutableTagDenied {
  return new ImmutableTagDenied(error);
}
