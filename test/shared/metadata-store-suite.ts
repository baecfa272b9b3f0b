import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BlobInUseError,
  ManifestInUseError,
  MissingReferenceError,
  UploadSessionNotFoundError,
  type MetadataStore,
  type NewManifest,
} from '../../src/metadata/metadata-store.js';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

function digestOf(data: string | Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function blob(name: string): { digest: string; size: number } {
  return { digest: digestOf(`blob ${name}`), size: 100 + name.length };
}

/** A manifest whose content (and so digest) is derived from `seed`. */
function manifest(seed: string, fields: Partial<NewManifest> = {}): NewManifest {
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, seed }));
  return {
    digest: digestOf(content),
    mediaType: MANIFEST,
    size: content.length,
    content,
    artifactType: null,
    subject: null,
    annotations: null,
    blobs: [],
    children: [],
    ...fields,
  };
}

/**
 * The behaviour every MetadataStore must have, run unchanged against each backend. `create`
 * gives a fresh, empty store.
 */
export function metadataStoreSuite(
  name: string,
  create: () => Promise<{ store: MetadataStore; cleanup: () => Promise<void> }>,
): void {
  describe(`MetadataStore: ${name}`, () => {
    let store: MetadataStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await create());
    });

    afterEach(async () => {
      await cleanup();
    });

    /** Links the manifest's blobs into the repository, then puts it. */
    async function push(repository: string, m: NewManifest, tag?: string): Promise<void> {
      for (const digest of m.blobs) await store.blobs.link(repository, { digest, size: 1 });
      await store.manifests.put(repository, m, tag);
    }

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    describe('blobs', () => {
      it('links a blob into a repository, creating it', async () => {
        const b = blob('a');
        expect(await store.blobs.get(b.digest)).toBeNull();
        expect(await store.repositories.exists('lib/app')).toBe(false);

        await store.blobs.link('lib/app', b);

        expect(await store.blobs.get(b.digest)).toEqual(b);
        expect(await store.blobs.getInRepository('lib/app', b.digest)).toEqual(b);
        expect(await store.blobs.getInRepository('lib/other', b.digest)).toBeNull();
        expect(await store.repositories.exists('lib/app')).toBe(true);
        expect(await store.repositories.exists('lib/other')).toBe(false);
      });

      it('links idempotently and counts each blob once in the total size', async () => {
        const a = blob('a');
        const b = blob('bb');
        expect(await store.blobs.totalSize()).toBe(0);
        await store.blobs.link('one', a);
        await store.blobs.link('one', a);
        await store.blobs.link('two', a);
        await store.blobs.link('two', b);
        expect(await store.blobs.totalSize()).toBe(a.size + b.size);
        expect(await store.blobs.getInRepository('one', a.digest)).toEqual(a);
        expect(await store.blobs.getInRepository('two', a.digest)).toEqual(a);
      });

      it('keeps sizes beyond 32 bits', async () => {
        const big = { digest: digestOf('big'), size: 5 * 2 ** 32 + 7 };
        await store.blobs.link('r', big);
        expect(await store.blobs.getInRepository('r', big.digest)).toEqual(big);
        expect(await store.blobs.totalSize()).toBe(big.size);
      });

      it('unlinks a blob from one repository only', async () => {
        const a = blob('a');
        await store.blobs.link('one', a);
        await store.blobs.link('two', a);

        expect(await store.blobs.unlink('one', a.digest)).toBe(true);
        expect(await store.blobs.unlink('one', a.digest)).toBe(false);
        expect(await store.blobs.unlink('nowhere', a.digest)).toBe(false);

        expect(await store.blobs.getInRepository('one', a.digest)).toBeNull();
        expect(await store.blobs.getInRepository('two', a.digest)).toEqual(a);
        // The blob stays recorded (garbage collection decides about its bytes).
        expect(await store.blobs.get(a.digest)).toEqual(a);
      });

      it('refuses to unlink a blob a manifest of the repository references', async () => {
        const layer = blob('layer');
        const m = manifest('m', { blobs: [layer.digest] });
        await push('r', m);
        await store.blobs.link('other', layer);

        const error = await store.blobs.unlink('r', layer.digest).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(BlobInUseError);
        expect(error).toMatchObject({ digest: layer.digest, manifest: m.digest });
        expect(await store.blobs.getInRepository('r', layer.digest)).not.toBeNull();

        // Another repository's link is independent.
        expect(await store.blobs.unlink('other', layer.digest)).toBe(true);

        // Once the manifest is gone, the blob can go.
        expect(await store.manifests.delete('r', m.digest)).toBe(true);
        expect(await store.blobs.unlink('r', layer.digest)).toBe(true);
      });
    });

    describe('manifests', () => {
      it('stores a manifest with its exact bytes and fields', async () => {
        const config = blob('config');
        const layer = blob('layer');
        const content = Buffer.from([0x7b, 0x00, 0xff, 0xfe, 0x80, 0x7d]);
        const m: NewManifest = {
          digest: digestOf(content),
          mediaType: MANIFEST,
          size: content.length,
          content,
          artifactType: 'application/vnd.example+type',
          subject: digestOf('subject'),
          annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', é: 'ü' },
          blobs: [config.digest, layer.digest, layer.digest],
          children: [],
        };
        await store.blobs.link('lib/app', config);
        await store.blobs.link('lib/app', layer);
        await store.manifests.put('lib/app', m);

        const got = await store.manifests.get('lib/app', m.digest);
        expect(got).not.toBeNull();
        expect(Buffer.isBuffer(got?.content)).toBe(true);
        expect(got?.content.equals(content)).toBe(true);
        expect(got).toEqual({
          digest: m.digest,
          mediaType: m.mediaType,
          size: m.size,
          content,
          artifactType: m.artifactType,
          subject: m.subject,
          annotations: m.annotations,
        });
        expect(await store.manifests.get('lib/other', m.digest)).toBeNull();
        expect(await store.manifests.get('lib/app', digestOf('absent'))).toBeNull();
        expect(await store.manifests.getByTag('lib/app', 'latest')).toBeNull();
      });

      it('gets a manifest by tag', async () => {
        const m = manifest('m', { blobs: [blob('l').digest] });
        await push('r', m, 'v1');
        const got = await store.manifests.getByTag('r', 'v1');
        expect(got?.digest).toBe(m.digest);
        expect(got?.content.equals(m.content)).toBe(true);
        expect(await store.manifests.getByTag('r', 'v2')).toBeNull();
        expect(await store.manifests.getByTag('other', 'v1')).toBeNull();
      });

      it('rolls back everything when a referenced blob is missing', async () => {
        const present = blob('present');
        const absent = blob('absent');
        await store.blobs.link('elsewhere', absent); // known, but not in this repository
        const m = manifest('m', { blobs: [present.digest, absent.digest] });

        // In a repository that does not exist yet.
        const error = await store.manifests.put('fresh', m, 'latest').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MissingReferenceError);
        expect(error).toMatchObject({ kind: 'blob', digest: present.digest });
        expect(await store.repositories.exists('fresh')).toBe(false);
        expect(await store.repositories.list({ limit: 10 })).toEqual(['elsewhere']);

        // In a repository holding only some of the blobs.
        await store.blobs.link('r', present);
        const again = await store.manifests.put('r', m, 'latest').catch((e: unknown) => e);
        expect(again).toBeInstanceOf(MissingReferenceError);
        expect(again).toMatchObject({ kind: 'blob', digest: absent.digest });
        expect(await store.manifests.get('r', m.digest)).toBeNull();
        expect(await store.manifests.getByTag('r', 'latest')).toBeNull();
        expect(await store.tags.get('r', 'latest')).toBeNull();
        expect(await store.tags.list('r', { limit: 10 })).toEqual([]);
        expect(await store.tags.history('r', 'latest')).toEqual([]);
        // No reference rows were left behind: the blob is still unlinkable.
        expect(await store.blobs.unlink('r', present.digest)).toBe(true);
      });

      it('rolls back everything when a child manifest is missing', async () => {
        const child = manifest('child', { blobs: [blob('c').digest] });
        const absentChild = manifest('absent-child');
        await push('r', child);
        await push('other', absentChild); // exists, but in another repository
        const index = manifest('index', {
          mediaType: INDEX,
          children: [child.digest, absentChild.digest],
        });

        const error = await store.manifests.put('r', index, 'multi').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MissingReferenceError);
        expect(error).toMatchObject({ kind: 'manifest', digest: absentChild.digest });
        expect(await store.manifests.get('r', index.digest)).toBeNull();
        expect(await store.tags.get('r', 'multi')).toBeNull();
        expect(await store.tags.history('r', 'multi')).toEqual([]);
        // No child rows were left behind: the child is deletable.
        expect(await store.manifests.delete('r', child.digest)).toBe(true);
      });

      it('stores an index over manifests of the repository', async () => {
        const a = manifest('a', { blobs: [blob('a').digest] });
        const b = manifest('b', { blobs: [blob('b').digest] });
        await push('r', a);
        await push('r', b);
        const index = manifest('index', { mediaType: INDEX, children: [a.digest, b.digest] });
        await store.manifests.put('r', index, 'latest');
        expect((await store.manifests.getByTag('r', 'latest'))?.mediaType).toBe(INDEX);
      });

      it('re-putting an existing manifest keeps the original row and adds the new tag', async () => {
        const m = manifest('m', { blobs: [blob('l').digest], annotations: { first: 'yes' } });
        await push('r', m, 'v1');
        const before = await store.manifests.get('r', m.digest);

        await store.manifests.put('r', { ...m, annotations: { second: 'yes' } }, 'v2');
        await store.manifests.put('r', m); // without a tag: nothing changes

        expect(await store.manifests.get('r', m.digest)).toEqual(before);
        expect((await store.manifests.getByTag('r', 'v1'))?.digest).toBe(m.digest);
        expect((await store.manifests.getByTag('r', 'v2'))?.digest).toBe(m.digest);
        expect(await store.tags.list('r', { limit: 10 })).toEqual(['v1', 'v2']);
        expect(await store.tags.history('r', 'v1')).toHaveLength(1);
        expect(await store.tags.history('r', 'v2')).toMatchObject([
          { tag: 'v2', previousDigest: null, digest: m.digest },
        ]);
      });

      it('keeps manifests of different repositories apart', async () => {
        const m = manifest('shared', { blobs: [blob('l').digest] });
        await push('one', m, 'latest');
        await push('two', m, 'latest');
        expect(await store.manifests.delete('one', m.digest)).toBe(true);
        expect(await store.manifests.get('one', m.digest)).toBeNull();
        expect((await store.manifests.getByTag('two', 'latest'))?.digest).toBe(m.digest);
      });

      it('deletes a manifest with its tags, recording them as moves to nothing', async () => {
        const m = manifest('m', { blobs: [blob('l').digest] });
        const other = manifest('other', { blobs: [blob('o').digest] });
        await push('r', m, 'a');
        await store.manifests.put('r', m, 'b');
        await push('r', other, 'c');

        expect(await store.manifests.delete('r', m.digest)).toBe(true);

        expect(await store.manifests.get('r', m.digest)).toBeNull();
        expect(await store.tags.get('r', 'a')).toBeNull();
        expect(await store.tags.get('r', 'b')).toBeNull();
        expect(await store.tags.list('r', { limit: 10 })).toEqual(['c']);
        for (const tag of ['a', 'b']) {
          const history = await store.tags.history('r', tag);
          expect(history).toMatchObject([
            { tag, previousDigest: m.digest, digest: null },
            { tag, previousDigest: null, digest: m.digest },
          ]);
        }
        expect(await store.tags.history('r', 'c')).toHaveLength(1);

        expect(await store.manifests.delete('r', m.digest)).toBe(false);
        expect(await store.manifests.delete('nowhere', m.digest)).toBe(false);
      });

      it('refuses to delete a manifest an index of the repository references', async () => {
        const child = manifest('child', { blobs: [blob('c').digest] });
        await push('r', child, 'child');
        const index = manifest('index', { mediaType: INDEX, children: [child.digest] });
        await store.manifests.put('r', index, 'latest');
        // An index in another repository does not hold this repository's child.
        await push('other', child);
        await store.manifests.put('other', index);

        const error = await store.manifests.delete('r', child.digest).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ManifestInUseError);
        expect(error).toMatchObject({ digest: child.digest, index: index.digest });
        expect(await store.manifests.get('r', child.digest)).not.toBeNull();
        expect((await store.tags.get('r', 'child'))?.digest).toBe(child.digest);
        expect(await store.tags.history('r', 'child')).toHaveLength(1);

        expect(await store.manifests.delete('r', index.digest)).toBe(true);
        expect(await store.manifests.delete('r', child.digest)).toBe(true);
        // The other repository still refuses.
        await expect(store.manifests.delete('other', child.digest)).rejects.toBeInstanceOf(
          ManifestInUseError,
        );
      });

      it('lists referrers by subject, optionally by artifact type, in a stable order', async () => {
        const subject = manifest('subject', { blobs: [blob('s').digest] });
        await push('r', subject, 'latest');
        const sig1 = manifest('sig1', {
          subject: subject.digest,
          artifactType: 'application/vnd.example.signature',
          annotations: { kind: 'signature' },
        });
        const sig2 = manifest('sig2', {
          subject: subject.digest,
          artifactType: 'application/vnd.example.signature',
        });
        const sbom = manifest('sbom', { subject: subject.digest, artifactType: 'application/spdx+json' });
        const unrelated = manifest('unrelated', { subject: digestOf('another subject') });
        for (const m of [sig1, sbom, sig2, unrelated]) await store.manifests.put('r', m);
        await store.manifests.put('other', manifest('elsewhere', { subject: subject.digest }));

        const all = await store.manifests.referrers('r', subject.digest);
        expect(all.map((r) => r.digest)).toEqual([sig1.digest, sig2.digest, sbom.digest].sort());
        expect(all.find((r) => r.digest === sig1.digest)).toEqual({
          digest: sig1.digest,
          mediaType: MANIFEST,
          size: sig1.size,
          artifactType: 'application/vnd.example.signature',
          annotations: { kind: 'signature' },
        });
        expect(await store.manifests.referrers('r', subject.digest)).toEqual(all);

        const signatures = await store.manifests.referrers(
          'r',
          subject.digest,
          'application/vnd.example.signature',
        );
        expect(signatures.map((r) => r.digest)).toEqual([sig1.digest, sig2.digest].sort());
        expect(await store.manifests.referrers('r', subject.digest, 'application/none')).toEqual([]);
        // A subject need not exist.
        expect(await store.manifests.referrers('r', digestOf('another subject'))).toHaveLength(1);
        expect(await store.manifests.referrers('nowhere', subject.digest)).toEqual([]);

        await store.manifests.delete('r', sig1.digest);
        expect((await store.manifests.referrers('r', subject.digest)).map((r) => r.digest)).toEqual(
          [sig2.digest, sbom.digest].sort(),
        );
      });

      it('ends consistent after 20 parallel puts of different tags to one manifest', async () => {
        const m = manifest('m', { blobs: [blob('l').digest] });
        await store.blobs.link('r', blob('l'));
        const tags = Array.from({ length: 20 }, (_, i) => `t${String(i).padStart(2, '0')}`);

        await Promise.all(tags.map((tag) => store.manifests.put('r', m, tag)));

        expect(await store.tags.list('r', { limit: 100 })).toEqual(tags);
        for (const tag of tags) {
          expect((await store.tags.get('r', tag))?.digest).toBe(m.digest);
          expect(await store.tags.history('r', tag)).toMatchObject([
            { tag, previousDigest: null, digest: m.digest },
          ]);
        }
        expect(await store.manifests.get('r', m.digest)).not.toBeNull();
        expect(await store.manifests.delete('r', m.digest)).toBe(true);
        expect(await store.tags.list('r', { limit: 100 })).toEqual([]);
      });

      it('keeps a consistent history after parallel moves of one tag', async () => {
        const manifests = Array.from({ length: 10 }, (_, i) => manifest(`m${i}`));
        await Promise.all(manifests.map((m) => store.manifests.put('r', m, 'latest')));

        const history = await store.tags.history('r', 'latest');
        expect(history).toHaveLength(10);
        expect(history[history.length - 1]?.previousDigest).toBeNull();
        for (let i = 0; i < history.length - 1; i++) {
          expect(history[i]?.previousDigest).toBe(history[i + 1]?.digest);
        }
        expect((await store.tags.get('r', 'latest'))?.digest).toBe(history[0]?.digest);
        expect(new Set(history.map((h) => h.digest))).toEqual(new Set(manifests.map((m) => m.digest)));
      });
    });

    describe('tags', () => {
      it('records creation, moves and deletion in the history, newest first', async () => {
        const m1 = manifest('m1');
        const m2 = manifest('m2');
        await store.manifests.put('r', m1, 'latest');
        const created = await store.tags.get('r', 'latest');
        expect(created).toMatchObject({ name: 'latest', digest: m1.digest });
        expect(created?.updatedAt).toBeInstanceOf(Date);

        await store.manifests.put('r', m1, 'latest'); // not a move
        await store.manifests.put('r', m2, 'latest');
        await store.manifests.put('r', m1, 'latest');
        expect((await store.tags.get('r', 'latest'))?.digest).toBe(m1.digest);

        expect(await store.tags.delete('r', 'latest')).toBe(true);
        expect(await store.tags.get('r', 'latest')).toBeNull();
        expect(await store.manifests.getByTag('r', 'latest')).toBeNull();
        // The manifest stays.
        expect(await store.manifests.get('r', m1.digest)).not.toBeNull();

        const history = await store.tags.history('r', 'latest');
        expect(history.map(({ previousDigest, digest }) => [previousDigest, digest])).toEqual([
          [m1.digest, null],
          [m2.digest, m1.digest],
          [m1.digest, m2.digest],
          [null, m1.digest],
        ]);
        for (const entry of history) {
          expect(entry.tag).toBe('latest');
          expect(entry.at).toBeInstanceOf(Date);
        }
        for (let i = 0; i < history.length - 1; i++) {
          expect(history[i]!.at.getTime()).toBeGreaterThanOrEqual(history[i + 1]!.at.getTime());
        }

        expect(await store.tags.delete('r', 'latest')).toBe(false);
        expect(await store.tags.delete('nowhere', 'latest')).toBe(false);
        expect(await store.tags.history('r', 'latest')).toHaveLength(4);
        expect(await store.tags.history('r', 'never')).toEqual([]);
        expect(await store.tags.history('nowhere', 'latest')).toEqual([]);
      });

      it('updates updatedAt when a tag moves', async () => {
        await store.manifests.put('r', manifest('m1'), 'latest');
        const first = await store.tags.get('r', 'latest');
        await sleep(5);
        await store.manifests.put('r', manifest('m2'), 'latest');
        const second = await store.tags.get('r', 'latest');
        expect(second!.updatedAt.getTime()).toBeGreaterThan(first!.updatedAt.getTime());
      });

      it('lists tags in byte order with last and limit', async () => {
        const tags = ['v1', 'V2', 'latest', '1.0', 'a_b', 'a-b', 'a.b', 'ab', 'Z', 'z'];
        const m = manifest('m');
        for (const tag of tags) await store.manifests.put('r', m, tag);
        await store.manifests.put('other', m, 'zzz');
        const sorted = [...tags].sort(); // ASCII: byte order
        expect(sorted).toEqual(['1.0', 'V2', 'Z', 'a-b', 'a.b', 'a_b', 'ab', 'latest', 'v1', 'z']);

        expect(await store.tags.list('r', { limit: 100 })).toEqual(sorted);
        expect(await store.tags.list('r', { limit: sorted.length })).toEqual(sorted);
        expect(await store.tags.list('r', { limit: 3 })).toEqual(sorted.slice(0, 3));
        expect(await store.tags.list('r', { limit: 1 })).toEqual(['1.0']);
        expect(await store.tags.list('r', { limit: 0 })).toEqual([]);
        expect(await store.tags.list('r', { last: 'Z', limit: 3 })).toEqual(['a-b', 'a.b', 'a_b']);
        expect(await store.tags.list('r', { last: 'a', limit: 2 })).toEqual(['a-b', 'a.b']);
        expect(await store.tags.list('r', { last: 'v1', limit: 5 })).toEqual(['z']);
        expect(await store.tags.list('r', { last: 'z', limit: 5 })).toEqual([]);
        expect(await store.tags.list('r', { last: '', limit: 2 })).toEqual(['1.0', 'V2']);

        // Walking pages reproduces the whole list.
        const walked: string[] = [];
        let last: string | undefined;
        for (;;) {
          const page = await store.tags.list('r', last === undefined ? { limit: 4 } : { last, limit: 4 });
          walked.push(...page);
          if (page.length < 4) break;
          last = page[page.length - 1];
        }
        expect(walked).toEqual(sorted);

        expect(await store.tags.list('nowhere', { limit: 10 })).toEqual([]);
      });

      it('lists every tag creation and removal at once, whichever write made it', async () => {
        const m1 = manifest('m1');
        const m2 = manifest('m2');
        await store.manifests.put('r', m1, 'a');
        await store.manifests.put('r', m1, 'b');
        expect(await store.tags.list('r', { limit: 100 })).toEqual(['a', 'b']);
        expect(await store.tags.list('r', { limit: 100 })).toEqual(['a', 'b']); // a repeated listing

        await store.manifests.put('r', m2, 'a'); // a move: same names
        expect(await store.tags.list('r', { limit: 100 })).toEqual(['a', 'b']);
        await store.manifests.put('r', m2, 'c');
        expect(await store.tags.list('r', { limit: 100 })).toEqual(['a', 'b', 'c']);
        expect(await store.tags.list('r', { last: 'a', limit: 1 })).toEqual(['b']);
        expect(await store.tags.delete('r', 'b')).toBe(true);
        expect(await store.tags.list('r', { limit: 100 })).toEqual(['a', 'c']);
        // Deleting a manifest removes the tags that name it.
        expect(await store.manifests.delete('r', m2.digest)).toBe(true);
        expect(await store.tags.list('r', { limit: 100 })).toEqual([]);
        await store.manifests.put('r', m1, 'd');
        expect(await store.tags.list('r', { limit: 100 })).toEqual(['d']);
        // Other repositories are untouched.
        await store.manifests.put('s', m1, 'x');
        expect(await store.tags.list('r', { limit: 100 })).toEqual(['d']);
        expect(await store.tags.list('s', { limit: 100 })).toEqual(['x']);
      });
    });

    describe('lifecycle settings', () => {
      it('are null for unknown projects, default to null, are replaced, and go with the project', async () => {
        expect(await store.lifecycle.get('team')).toBeNull();
        expect(await store.lifecycle.set('team', { historyWindowMs: 1000 })).toBe(false);
        await store.control.projects.create({ name: 'team', public: false, createdBy: null });
        expect(await store.lifecycle.get('team')).toEqual({ historyWindowMs: null });
        expect(await store.lifecycle.set('team', { historyWindowMs: 30 * 86_400_000 })).toBe(true);
        expect(await store.lifecycle.get('team')).toEqual({ historyWindowMs: 30 * 86_400_000 });
        expect(await store.lifecycle.set('team', { historyWindowMs: null })).toBe(true);
        expect(await store.lifecycle.get('team')).toEqual({ historyWindowMs: null });
        await store.lifecycle.set('team', { historyWindowMs: 5 });
        expect(await store.control.projects.delete('team', true)).toBe('deleted');
        await store.control.projects.create({ name: 'team', public: false, createdBy: null });
        expect(await store.lifecycle.get('team')).toEqual({ historyWindowMs: null });
      });
    });

    describe('immutable tag rules', () => {
      it('are added, listed oldest first, removed, and go with the project', async () => {
        expect(await store.lifecycle.rules('team')).toEqual([]);
        expect(await store.lifecycle.addRule('team', { repository: 'team/*', tag: 'v*', createdBy: 'alice' })).toBeNull();
        await store.control.projects.create({ name: 'team', public: false, createdBy: null });
        const a = await store.lifecycle.addRule('team', { repository: 'team/*', tag: 'v*', createdBy: 'alice' });
        const b = await store.lifecycle.addRule('team', { repository: 'team/app', tag: 'release-*', createdBy: null });
        expect(a).toMatchObject({ repository: 'team/*', tag: 'v*', createdBy: 'alice' });
        expect((await store.lifecycle.rules('team')).map((r) => r.id)).toEqual([a!.id, b!.id]);
        expect(await store.lifecycle.deleteRule('other', a!.id)).toBe(false);
        expect(await store.lifecycle.deleteRule('team', 'x')).toBe(false);
        expect(await store.lifecycle.deleteRule('team', a!.id)).toBe(true);
        expect(await store.lifecycle.deleteRule('team', a!.id)).toBe(false);
        expect((await store.lifecycle.rules('team')).map((r) => r.tag)).toEqual(['release-*']);
        await store.control.projects.delete('team', true);
        expect(await store.lifecycle.rules('team')).toEqual([]);
      });

      it('guard moves and manifest deletions inside their transactions', async () => {
        const guard = { immutable: (tag: string) => (tag.startsWith('v') ? 'rule-1' : null) };
        await store.blobs.link('repo', blob('a'));
        const one = manifest('one', { blobs: [blob('a').digest] });
        const two = manifest('two', { blobs: [blob('a').digest] });
        await store.manifests.put('repo', one, 'v1', guard);
        await store.manifests.put('repo', one, 'v1', guard);
        await store.manifests.put('repo', one, 'latest', guard);
        await expect(store.manifests.put('repo', two, 'v1', guard)).rejects.toMatchObject({ name: 'ImmutableTagError', tag: 'v1', rule: 'rule-1', digest: one.digest });
        // Refused as a whole: the new manifest was not stored either.
        expect(await store.manifests.get('repo', two.digest)).toBeNull();
        await store.manifests.put('repo', two, 'latest', guard);
        await expect(store.manifests.delete('repo', one.digest, guard)).rejects.toMatchObject({ name: 'ImmutableTagError', tag: 'v1' });
        expect((await store.tags.get('repo', 'v1'))?.digest).toBe(one.digest);
        expect(await store.manifests.delete('repo', one.digest)).toBe(true);
      });
    });

    describe('repositories', () => {
      it('lists repositories with content in byte order with last and limit', async () => {
        const names = ['lib/b', 'lib-a', 'lib.a', 'lib/a', 'lib_a', 'liba', 'a', 'z/z'];
        for (const [i, name] of names.entries()) {
          if (i % 2 === 0) await store.blobs.link(name, blob(name));
          else await store.manifests.put(name, manifest(name));
        }
        const sorted = [...names].sort();
        expect(sorted).toEqual(['a', 'lib-a', 'lib.a', 'lib/a', 'lib/b', 'lib_a', 'liba', 'z/z']);

        expect(await store.repositories.list({ limit: 100 })).toEqual(sorted);
        expect(await store.repositories.list({ limit: 2 })).toEqual(['a', 'lib-a']);
        expect(await store.repositories.list({ limit: 0 })).toEqual([]);
        expect(await store.repositories.list({ last: 'lib.a', limit: 2 })).toEqual(['lib/a', 'lib/b']);
        expect(await store.repositories.list({ last: 'lib/', limit: 1 })).toEqual(['lib/a']);
        expect(await store.repositories.list({ last: 'liba', limit: 10 })).toEqual(['z/z']);
        expect(await store.repositories.list({ last: 'z/z', limit: 10 })).toEqual([]);
        for (const name of names) expect(await store.repositories.exists(name)).toBe(true);
      });

      it('omits repositories left without manifests or blobs', async () => {
        const b = blob('b');
        await store.blobs.link('blobs-only', b);
        const m = manifest('m');
        await store.manifests.put('manifest-only', m, 'latest');
        expect(await store.repositories.list({ limit: 10 })).toEqual(['blobs-only', 'manifest-only']);

        await store.blobs.unlink('blobs-only', b.digest);
        await store.manifests.delete('manifest-only', m.digest);
        expect(await store.repositories.list({ limit: 10 })).toEqual([]);
        expect(await store.repositories.exists('blobs-only')).toBe(false);
        expect(await store.repositories.exists('manifest-only')).toBe(false);
      });
    });

    describe('uploads', () => {
      it('creates, reads, sizes and deletes an upload session', async () => {
        const before = Date.now();
        const created = await store.uploads.create({ id: 'u1', repository: 'lib/app' });
        expect(created).toMatchObject({ id: 'u1', repository: 'lib/app', size: 0 });
        expect(created.startedAt.getTime()).toBeGreaterThanOrEqual(before);
        expect(created.updatedAt.getTime()).toBe(created.startedAt.getTime());
        expect(await store.uploads.get('u1')).toEqual(created);
        expect(await store.uploads.get('u2')).toBeNull();
        expect(await store.uploads.count()).toBe(1);

        await sleep(5);
        const lease = await store.uploads.beginAppend('u1', 0, 60_000);
        expect(lease).not.toBeNull();
        expect(await store.uploads.endAppend(lease!, 3 * 2 ** 32)).toBe(true);
        const sized = await store.uploads.get('u1');
        expect(sized?.size).toBe(3 * 2 ** 32);
        expect(sized?.startedAt).toEqual(created.startedAt);
        expect(sized!.updatedAt.getTime()).toBeGreaterThan(created.updatedAt.getTime());
        await expect(store.uploads.beginAppend('u2', 0, 60_000)).rejects.toBeInstanceOf(UploadSessionNotFoundError);

        expect(await store.uploads.delete('u1')).toBe(true);
        expect(await store.uploads.delete('u1')).toBe(false);
        expect(await store.uploads.get('u1')).toBeNull();
        expect(await store.uploads.count()).toBe(0);
        // An upload alone does not make a repository.
        expect(await store.repositories.exists('lib/app')).toBe(false);
      });

      it('completes an upload: session gone, blob recorded and linked, together', async () => {
        const b = blob('uploaded');
        await store.uploads.create({ id: 'u1', repository: 'lib/app' });
        await store.uploads.create({ id: 'u2', repository: 'lib/app' });

        await store.uploads.complete('u1', b);

        expect(await store.uploads.get('u1')).toBeNull();
        expect(await store.uploads.count()).toBe(1);
        expect(await store.blobs.get(b.digest)).toEqual(b);
        expect(await store.blobs.getInRepository('lib/app', b.digest)).toEqual(b);
        expect(await store.repositories.list({ limit: 10 })).toEqual(['lib/app']);

        // Completing a session that is gone changes nothing.
        const other = blob('other');
        const error = await store.uploads.complete('u1', other).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(UploadSessionNotFoundError);
        expect(error).toMatchObject({ id: 'u1' });
        expect(await store.blobs.get(other.digest)).toBeNull();
        expect(await store.blobs.getInRepository('lib/app', other.digest)).toBeNull();
        expect(await store.uploads.count()).toBe(1);

        // The same blob can arrive again through another session.
        await store.uploads.complete('u2', b);
        expect(await store.uploads.count()).toBe(0);
        expect(await store.blobs.totalSize()).toBe(b.size);
      });

      it('gives one writer at a time the lease to append, at the acknowledged size only', async () => {
        await store.uploads.create({ id: 'w', repository: 'r' });
        const first = await store.uploads.beginAppend('w', 0, 60_000);
        expect(first).not.toBeNull();
        // A second writer is refused while the first holds the lease.
        expect(await store.uploads.beginAppend('w', 0, 60_000)).toBeNull();
        expect(await store.uploads.renewAppend(first!, 60_000)).toBe(true);
        expect(await store.uploads.endAppend(first!, 100)).toBe(true);
        // A released lease is gone: it can neither be renewed nor record a size.
        expect(await store.uploads.renewAppend(first!, 60_000)).toBe(false);
        expect(await store.uploads.endAppend(first!, 200)).toBe(false);
        expect((await store.uploads.get('w'))?.size).toBe(100);
        // Only at the acknowledged size.
        expect(await store.uploads.beginAppend('w', 0, 60_000)).toBeNull();
        const second = await store.uploads.beginAppend('w', 100, 60_000);
        expect(second?.generation).not.toBe(first?.generation);
        // Released without a size: the size stays.
        expect(await store.uploads.endAppend(second!)).toBe(true);
        expect((await store.uploads.get('w'))?.size).toBe(100);
      });

      it('claims a session with its lease in one step, whatever its size', async () => {
        expect(await store.uploads.claim('none', 60_000)).toBeNull();
        await store.uploads.create({ id: 'c', repository: 'r' });
        const first = await store.uploads.claim('c', 60_000);
        expect(first?.upload).toMatchObject({ id: 'c', repository: 'r', size: 0, blobDigest: null });
        // One writer at a time, by claim or by beginAppend.
        expect(await store.uploads.claim('c', 60_000)).toBeNull();
        expect(await store.uploads.beginAppend('c', 0, 60_000)).toBeNull();
        expect(await store.uploads.endAppend(first!.lease, 70, `sha256:${'c'.repeat(64)}`)).toBe(true);
        const second = await store.uploads.claim('c', 60_000);
        expect(second?.upload).toMatchObject({ size: 70, blobDigest: `sha256:${'c'.repeat(64)}` });
        expect(second?.lease.generation).not.toBe(first?.lease.generation);
        expect(await store.uploads.endAppend(first!.lease)).toBe(false); // an old lease counts for nothing
        await store.uploads.complete('c', blob('claimed'), second!.lease);
        expect(await store.uploads.get('c')).toBeNull();
      });

      it('releases all leases at once (for a restarted single node)', async () => {
        await store.uploads.create({ id: 'y', repository: 'r' });
        const held = await store.uploads.beginAppend('y', 0, 60_000);
        expect(await store.uploads.beginAppend('y', 0, 60_000)).toBeNull();
        expect(await store.uploads.releaseAllLeases()).toBe(1);
        expect(await store.uploads.endAppend(held!, 5)).toBe(false);
        expect(await store.uploads.beginAppend('y', 0, 60_000)).not.toBeNull();
      });

      it('lets a new writer take over an expired lease, and the old one then loses it', async () => {
        await store.uploads.create({ id: 'x', repository: 'r' });
        const stale = await store.uploads.beginAppend('x', 0, 1);
        await sleep(10);
        const fresh = await store.uploads.beginAppend('x', 0, 60_000);
        expect(fresh).not.toBeNull();
        expect(await store.uploads.renewAppend(stale!, 60_000)).toBe(false);
        expect(await store.uploads.endAppend(stale!, 50)).toBe(false);
        const b = blob('leased');
        await expect(store.uploads.complete('x', b, stale!)).rejects.toBeInstanceOf(UploadSessionNotFoundError);
        expect(await store.blobs.get(b.digest)).toBeNull();
        await store.uploads.complete('x', b, fresh!);
        expect(await store.uploads.get('x')).toBeNull();
        expect(await store.blobs.getInRepository('r', b.digest)).toEqual(b);
      });

      it('lists stale sessions, oldest first, up to a limit', async () => {
        await store.uploads.create({ id: 'old-b', repository: 'r' });
        await store.uploads.create({ id: 'old-a', repository: 'r' });
        await sleep(5);
        await store.uploads.create({ id: 'old-c', repository: 'r' });
        await sleep(5);
        const cutoff = new Date();
        await sleep(5);
        await store.uploads.create({ id: 'fresh', repository: 'r' });

        const stale = await store.uploads.listStale(cutoff, 10);
        expect(stale.map((u) => u.id).sort()).toEqual(['old-a', 'old-b', 'old-c']);
        expect(stale[2]?.id).toBe('old-c');
        for (const u of stale) expect(u.updatedAt.getTime()).toBeLessThan(cutoff.getTime());
        expect(await store.uploads.listStale(cutoff, 2)).toHaveLength(2);
        expect(await store.uploads.listStale(cutoff, 0)).toEqual([]);
        expect(await store.uploads.listStale(new Date(0), 10)).toEqual([]);

        // Writing to a session makes it fresh again.
        const lease = await store.uploads.beginAppend('old-c', 0, 60_000);
        await store.uploads.endAppend(lease!, 10);
        expect((await store.uploads.listStale(cutoff, 10)).map((u) => u.id).sort()).toEqual([
          'old-a',
          'old-b',
        ]);
        expect(await store.uploads.count()).toBe(4);
      });
    });
  });
}
