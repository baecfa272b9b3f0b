import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  BlobNotFoundError,
  InvalidOffsetError,
  StorageUnavailableError,
  UploadNotFoundError,
  type BlobStore,
  type ByteRange,
} from '../blob-store.js';

const MiB = 1024 * 1024;
/** S3's smallest part (all but the last part of a multipart upload). */
export const MIN_PART_SIZE = 5 * MiB;
/** S3's largest single PUT/copy and largest part. */
const MAX_SINGLE_COPY = 5 * 1024 * MiB;
/** S3's most parts per multipart upload. */
const MAX_PARTS = 10_000;
/** Keys per DeleteObjects request (S3's limit). */
const DELETE_BATCH = 1000;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SEGMENT = /^(\d{16})$/;
const BLOB_KEY = /^blobs\/(sha256|sha512)\/([a-f0-9]{2})\/([a-f0-9]+)$/;

export interface S3BlobStoreOptions {
  bucket: string;
  /** Key prefix inside the bucket (several registries or test runs can share one bucket). */
  prefix?: string;
  /** e.g. http://127.0.0.1:7480 for Ceph RGW or MinIO; omitted for AWS S3. */
  endpoint?: string;
  region?: string;
  /** Path-style addressing (bucket in the path, not the host name): needed by most S3-compatible servers. */
  forcePathStyle?: boolean;
  /** Static credentials; without them the standard AWS chain (AWS_* variables, profiles, IMDS) applies. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Server-side encryption of every object written. */
  serverSideEncryption?: 'AES256' | 'aws:kms';
  /** KMS key for `aws:kms` (the bucket's default key when omitted). */
  kmsKeyId?: string;
  /** Bytes per multipart part while streaming an append (at least 5 MiB). Default 8 MiB. */
  partSize?: number;
  /** Parts of one append uploaded at once; memory per append is about (this + 1) x partSize. Default 2. */
  partConcurrency?: number;
  /** Create the bucket when it is missing. Default true. */
  createBucket?: boolean;
  /** When set, blob GETs are answered with a redirect to a URL pre-signed for this many seconds. */
  redirectExpiresIn?: number;
  /** Milliseconds to establish a connection. Default 5000. */
  connectTimeout?: number;
  /** Milliseconds a connection may stay silent during a request before it fails. Default 60000. */
  socketTimeout?: number;
  /** Attempts per request, including retries of throttling, 5xx and network errors. Default 3. */
  maxAttempts?: number;
}

/** One append of an upload, stored as the object uploads/<id>/<start offset>. */
interface Segment {
  key: string;
  start: number;
  size: number;
  modifiedAt: Date;
}

/** Bytes [from, from + length) of the object `key`, which holds `objectSize` bytes. */
interface Piece {
  key: string;
  from: number;
  length: number;
  objectSize: number;
}

/**
 * BlobStore on an S3-compatible object store (AWS S3, Ceph RGW, MinIO, R2, ...).
 *
 *   <prefix>blobs/<algo>/<first two hex>/<hex>   committed blobs, at their content address
 *   <prefix>uploads/<id>/<start offset, 16 digits> one object per append of an upload
 *
 * Appends at an offset: each append is its own object, keyed by the offset it starts at, written
 * with a single PUT when it fits in one part and as a streamed multipart upload otherwise
 * (bounded memory: `partConcurrency + 1` parts). An append that fails or is interrupted leaves no
 * object (the multipart upload is aborted; one left by a crash is aborted by
 * `abortStaleWrites`). The upload's bytes are the segments in offset order, each cut where the
 * next one starts: appending at offset N first deletes the segments that start after N, so the
 * one written at N replaces everything past N (the filesystem store's truncate). `createUpload`
 * writes the empty segment at offset 0, which marks the upload as existing.
 *
 * Commit assembles the verified bytes at the content address in one atomic step: a CopyObject
 * when one segment holds them, otherwise a multipart upload whose parts are server-side copies
 * (UploadPartCopy) of segments of at least 5 MiB and streamed concatenations of the smaller ones.
 * S3 makes an object visible only when its PUT, copy or CompleteMultipartUpload succeeds, so a
 * blob is either absent or whole.
 */
export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly encryption: { ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string };
  private readonly redirectExpiresIn: number | undefined;
  private readonly requests = new Map<string, number>();

  constructor(private readonly options: S3BlobStoreOptions) {
    if (!options.bucket) throw new Error('S3 blob store: a bucket is required');
    this.bucket = options.bucket;
    this.prefix = normalisePrefix(options.prefix);
    this.partSize = options.partSize ?? 8 * MiB;
    if (this.partSize < MIN_PART_SIZE || this.partSize > MAX_SINGLE_COPY) {
      throw new Error(`S3 blob store: partSize must be between 5 MiB and 5 GiB, got ${this.partSize}`);
    }
    this.partConcurrency = Math.max(1, options.partConcurrency ?? 2);
    this.encryption = options.serverSideEncryption
      ? {
          ServerSideEncryption: options.serverSideEncryption,
          ...(options.kmsKeyId ? { SSEKMSKeyId: options.kmsKeyId } : {}),
        }
      : {};
    this.redirectExpiresIn = options.redirectExpiresIn;
    this.client = new S3Client({
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      region: options.region ?? 'us-east-1',
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      maxAttempts: options.maxAttempts ?? 3,
      // The SDK's default streams PUT bodies aws-chunked with a trailing checksum, which many
      // S3-compatible servers (Ceph RGW among them) refuse; checksums only where S3 requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: options.connectTimeout ?? 5_000,
        socketTimeout: options.socketTimeout ?? 60_000,
        httpAgent: { keepAlive: true, maxSockets: 256 },
        httpsAgent: { keepAlive: true, maxSockets: 256 },
      },
    });
    // Counts every HTTP attempt (the deserialize step runs once per attempt, retries included).
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const name = String(context.commandName ?? 'unknown').replace(/Command$/, '');
        this.requests.set(name, (this.requests.get(name) ?? 0) + 1);
        return next(args);
      },
      { step: 'deserialize', name: 'stowageRequestCounter' },
    );
  }

  /**
   * client.send, with failures of the object store itself (no answer, timeouts, 5xx and
   * throttling, after the SDK's `maxAttempts`) turned into StorageUnavailableError (a 503).
   */
  private readonly send = ((command: Parameters<S3Client['send']>[0]) =>
    this.client.send(command).catch((error: unknown) => {
      throw isUnavailable(error) ? new StorageUnavailableError(describeS3Error(error, 'object storage unavailable').message, { cause: error }) : error;
    })) as S3Client['send'];

  /** Checks the bucket, creating it when missing (unless `createBucket` is false). */
  async init(): Promise<void> {
    try {
      await this.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (error) {
      if (!isNotFound(error)) throw describeS3Error(error, `cannot reach bucket ${this.bucket}`);
      if (this.options.createBucket === false) {
        throw new Error(`S3 bucket ${this.bucket} does not exist (and creating it is disabled)`, { cause: error });
      }
    }
    try {
      await this.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      // Another node created it meanwhile.
      const name = (error as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') {
        throw describeS3Error(error, `cannot create bucket ${this.bucket}`);
      }
    }
  }

  /** S3 requests sent so far, by operation (for tests and measurements). */
  requestCounts(): Record<string, number> {
    return Object.fromEntries([...this.requests].sort(([a], [b]) => a.localeCompare(b)));
  }

  async stat(digest: string): Promise<{ size: number } | null> {
    try {
      const head = await this.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) }));
      return { size: head.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async open(digest: string, range?: ByteRange): Promise<Readable> {
    try {
      const object = await this.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.blobKey(digest),
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
      return object.Body as Readable;
    } catch (error) {
      if (isNotFound(error)) throw new BlobNotFoundError(digest);
      throw error;
    }
  }

  async delete(digest: string): Promise<void> {
    await this.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) }));
  }

  /** Garbage collection's deletions: DeleteObjects of up to 1000 keys, at most 4 in flight. */
  async deleteMany(digests: string[]): Promise<void> {
    const keys = digests.map((digest) => this.blobKey(digest));
    const batches: string[][] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) batches.push(keys.slice(i, i + DELETE_BATCH));
    await runLimited(batches, 4, (batch) => this.deleteKeys(batch));
  }

  async *list(): AsyncIterable<{ digest: string; size: number }> {
    for await (const object of this.listObjects(`${this.prefix}blobs/`)) {
      const match = BLOB_KEY.exec(object.key.slice(this.prefix.length));
      if (!match) continue;
      const digest = `${match[1]}:${match[3]}`;
      if (!DIGEST.test(digest) || !match[3]!.startsWith(match[2]!)) continue; // not ours
      yield { digest, size: object.size };
    }
  }

  async redirectUrl(digest: string): Promise<string | null> {
    if (this.redirectExpiresIn === undefined) return null;
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) }), {
      expiresIn: this.redirectExpiresIn,
    });
  }

  get wholeBlobLimit(): number {
    return this.partSize;
  }

  async putBlob(digest: string, data: Buffer): Promise<void> {
    if (data.length > this.partSize) throw new Error(`S3 blob store: putBlob takes at most ${this.partSize} bytes, got ${data.length}`);
    await this.putObject(this.blobKey(digest), data);
  }

  async createUpload(id: string): Promise<void> {
    await this.putObject(this.segmentKey(id, 0), Buffer.alloc(0));
  }

  async appendUpload(id: string, data: Readable, offset: number): Promise<number> {
    const segments = await this.segments(id);
    if (!segments) {
      data.resume();
      throw new UploadNotFoundError(id);
    }
    const stored = storedSize(segments);
    if (stored < offset) {
      data.resume();
      throw new InvalidOffsetError(id, offset, stored);
    }
    // Whatever starts past `offset` was never acknowledged: drop it, so that the segment written
    // now at `offset` ends the upload. (A segment starting before `offset` and reaching past it
    // is cut by the new one when the upload is read.)
    await this.deleteKeys(segments.filter((s) => s.start > offset).map((s) => s.key));
    const written = await this.writeObject(this.segmentKey(id, offset), data);
    return offset + written;
  }

  async readUpload(id: string, size: number): Promise<Readable> {
    const segments = await this.segments(id);
    if (!segments) throw new UploadNotFoundError(id);
    const stored = storedSize(segments);
    if (stored < size) throw new InvalidOffsetError(id, size, stored);
    return this.readPieces(pieces(segments, size));
  }

  async commitUpload(id: string, digest: string, size: number): Promise<void> {
    const target = this.blobKey(digest);
    this.uploadPrefix(id); // validates the id before any request
    const [segments, existing] = await Promise.all([this.segments(id), this.stat(digest)]);
    if (existing) {
      // Content addressing: the blob already has these very bytes (and overwriting an object
      // that readers may be streaming is best avoided), so only the upload goes.
      if (segments) await this.deleteKeys(segments.map((s) => s.key));
      return;
    }
    if (!segments) throw new UploadNotFoundError(id);
    const stored = storedSize(segments);
    if (stored < size) throw new InvalidOffsetError(id, size, stored);
    await this.assemble(target, pieces(segments, size), size);
    await this.deleteKeys(segments.map((s) => s.key));
  }

  async abortUpload(id: string): Promise<void> {
    const segments = await this.segments(id);
    if (segments) await this.deleteKeys(segments.map((s) => s.key));
  }

  async *listUploads(): AsyncIterable<{ id: string; modifiedAt: Date }> {
    let current: { id: string; modifiedAt: Date } | undefined;
    for await (const object of this.listObjects(`${this.prefix}uploads/`)) {
      const [id, segment] = object.key.slice(this.prefix.length + 'uploads/'.length).split('/');
      if (id === undefined || !UPLOAD_ID.test(id) || segment === undefined || !SEGMENT.test(segment)) continue;
      if (current && current.id !== id) {
        yield current;
        current = undefined;
      }
      if (!current) current = { id, modifiedAt: object.modifiedAt };
      else if (object.modifiedAt > current.modifiedAt) current.modifiedAt = object.modifiedAt;
    }
    if (current) yield current;
  }

  /**
   * Aborts the multipart uploads under this store's prefix begun before `before`: appends and
   * commits cut short by a crash leave them, invisible but billed. Resolves to how many it aborted.
   */
  async abortStaleWrites(before: Date): Promise<number> {
    let aborted = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker, UploadIdMarker }),
      );
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || !upload.Initiated || upload.Initiated >= before) continue;
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }))
          .then(() => aborted++)
          .catch((error: unknown) => {
            if (!isNotFound(error)) throw error; // finished or aborted meanwhile
          });
      }
      if (!page.IsTruncated) return aborted;
      KeyMarker = page.NextKeyMarker;
      UploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async ping(): Promise<void> {
    await this.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  // --- writing -------------------------------------------------------------------------------

  private async putObject(key: string, body: Buffer | Readable, length?: number): Promise<void> {
    await this.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentLength: length ?? (body as Buffer).length,
        ContentType: 'application/octet-stream',
        ...this.encryption,
      }),
    );
  }

  /**
   * Streams `data` into the object `key`: one PUT when it fits in one part, otherwise a multipart
   * upload with `partConcurrency` parts in flight while the next one fills. Resolves to the
   * number of bytes written; on any error nothing is left at `key` (by this call).
   */
  private async writeObject(key: string, data: Readable): Promise<number> {
    let chunks: Buffer[] = [];
    let buffered = 0;
    let total = 0;
    let multipart: { uploadId: string; parts: CompletedPart[]; inFlight: Set<Promise<void>> } | undefined;

    const startPart = async (body: Buffer): Promise<void> => {
      if (!multipart) {
        const created = await this.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            ContentType: 'application/octet-stream',
            ...this.encryption,
          }),
        );
        multipart = { uploadId: created.UploadId!, parts: [], inFlight: new Set() };
      }
      const upload = multipart;
      const partNumber = upload.parts.length + 1;
      const part: CompletedPart = { PartNumber: partNumber };
      upload.parts.push(part);
      const pending = this.client
        .send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: upload.uploadId,
            PartNumber: partNumber,
            Body: body,
            ContentLength: body.length,
          }),
        )
        .then((result) => {
          part.ETag = result.ETag;
        });
      const tracked = pending.finally(() => upload.inFlight.delete(tracked));
      tracked.catch(() => undefined); // awaited below; never an unhandled rejection
      upload.inFlight.add(tracked);
      // Back-pressure: stop reading while the allowed number of parts is in flight.
      while (upload.inFlight.size >= this.partConcurrency) await Promise.race(upload.inFlight);
    };

    const takeBuffered = (): Buffer => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, buffered);
      chunks = [];
      buffered = 0;
      return body;
    };

    try {
      for await (const chunk of data) {
        let rest = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        total += rest.length;
        while (rest.length > 0) {
          // A full part goes out only once more data follows: an append of exactly one part
          // (an 8 MiB chunk) stays a single PutObject.
          if (buffered === this.partSize) await startPart(takeBuffered());
          const room = this.partSize - buffered;
          const take = rest.length <= room ? rest : rest.subarray(0, room);
          chunks.push(take);
          buffered += take.length;
          rest = rest.subarray(take.length);
        }
      }
      if (!multipart) {
        await this.putObject(key, takeBuffered());
        return total;
      }
      const upload: { uploadId: string; parts: CompletedPart[]; inFlight: Set<Promise<void>> } = multipart;
      if (buffered > 0) await startPart(takeBuffered());
      while (upload.inFlight.size > 0) await Promise.race(upload.inFlight);
      await this.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: upload.uploadId,
          MultipartUpload: { Parts: upload.parts },
        }),
      );
      return total;
    } catch (error) {
      if (multipart) await this.abortMultipart(key, multipart.uploadId, multipart.inFlight);
      throw error;
    }
  }

  /** Writes `pieces` (exactly `size` bytes) to `target` in one atomic step. */
  private async assemble(target: string, parts: Piece[], size: number): Promise<void> {
    const only = parts.length === 1 ? parts[0]! : undefined;
    if (size === 0) {
      await this.putObject(target, Buffer.alloc(0));
    } else if (only && only.from === 0 && only.length === only.objectSize && size <= MAX_SINGLE_COPY) {
      await this.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: target,
          CopySource: this.copySource(only.key),
          ContentType: 'application/octet-stream',
          MetadataDirective: 'REPLACE',
          ...this.encryption,
        }),
      );
    } else if (size <= this.partSize) {
      // Small and in several pieces: cheaper to stream through than to copy part by part.
      await this.putObject(target, await this.readPieces(parts), size);
    } else {
      await this.multipartCopy(target, parts, size);
    }
  }

  /**
   * Multipart upload at `target` from `pieces`: runs of at least 5 MiB inside one segment become
   * server-side UploadPartCopy parts; smaller pieces are streamed through this node and
   * concatenated into parts of `partSize` (S3 allows a part under 5 MiB only at the end).
   */
  private async multipartCopy(target: string, parts: Piece[], size: number): Promise<void> {
    const streamedPartSize = Math.max(this.partSize, Math.ceil(size / (MAX_PARTS - 100)));
    type Plan = { copy: Piece } | { stream: Piece[]; length: number };
    const plan: Plan[] = [];
    let pending: Piece[] = [];
    let pendingLength = 0;
    for (const piece of parts) {
      let from = piece.from;
      let left = piece.length;
      while (left > 0) {
        if (pendingLength === 0 && left >= MIN_PART_SIZE) {
          const length = Math.min(left, MAX_SINGLE_COPY);
          plan.push({ copy: { ...piece, from, length } });
          from += length;
          left -= length;
          continue;
        }
        const length = Math.min(left, streamedPartSize - pendingLength);
        pending.push({ ...piece, from, length });
        pendingLength += length;
        from += length;
        left -= length;
        if (pendingLength === streamedPartSize) {
          plan.push({ stream: pending, length: pendingLength });
          pending = [];
          pendingLength = 0;
        }
      }
    }
    if (pendingLength > 0) plan.push({ stream: pending, length: pendingLength });

    const created = await this.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target, ContentType: 'application/octet-stream', ...this.encryption }),
    );
    const uploadId = created.UploadId!;
    const completed: CompletedPart[] = plan.map((_, i) => ({ PartNumber: i + 1 }));
    try {
      // Copies cost this node nothing, streamed parts cost memory: a few at a time.
      await runLimited(plan, 4, async (step, i) => {
        const PartNumber = i + 1;
        if ('copy' in step) {
          const { copy } = step;
          const result = await this.send(
            new UploadPartCopyCommand({
              Bucket: this.bucket,
              Key: target,
              UploadId: uploadId,
              PartNumber,
              CopySource: this.copySource(copy.key),
              CopySourceRange: `bytes=${copy.from}-${copy.from + copy.length - 1}`,
            }),
          );
          completed[i]!.ETag = result.CopyPartResult?.ETag;
        } else {
          const result = await this.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: target,
              UploadId: uploadId,
              PartNumber,
              Body: await this.readPieces(step.stream),
              ContentLength: step.length,
            }),
          );
          completed[i]!.ETag = result.ETag;
        }
      });
      await this.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, MultipartUpload: { Parts: completed } }),
      );
    } catch (error) {
      await this.abortMultipart(target, uploadId, new Set());
      throw error;
    }
  }

  private async abortMultipart(key: string, uploadId: string, inFlight: Set<Promise<void>>): Promise<void> {
    await Promise.allSettled([...inFlight]);
    await this.client
      .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }))
      .catch(() => undefined); // abortStaleWrites retries later
  }

  // --- reading and listing ----------------------------------------------------------------------

  /** One stream over the pieces, read one ranged GET after another. */
  private async readPieces(parts: Piece[]): Promise<Readable> {
    const store = this;
    return Readable.from(
      (async function* () {
        for (const piece of parts) {
          if (piece.length === 0) continue;
          const object = await store.send(
            new GetObjectCommand({
              Bucket: store.bucket,
              Key: piece.key,
              Range: `bytes=${piece.from}-${piece.from + piece.length - 1}`,
            }),
          );
          yield* object.Body as Readable;
        }
      })(),
      { objectMode: false, highWaterMark: MiB },
    );
  }

  /** The upload's segments in offset order, or null when the upload does not exist. */
  private async segments(id: string): Promise<Segment[] | null> {
    const prefix = this.uploadPrefix(id);
    const found: Segment[] = [];
    let any = false;
    for await (const object of this.listObjects(prefix)) {
      any = true;
      const name = object.key.slice(prefix.length);
      if (!SEGMENT.test(name)) continue;
      found.push({ key: object.key, start: Number(name), size: object.size, modifiedAt: object.modifiedAt });
    }
    if (!any || found.length === 0) return null;
    return found.sort((a, b) => a.start - b.start);
  }

  private async *listObjects(prefix: string): AsyncIterable<{ key: string; size: number; modifiedAt: Date }> {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield { key: object.Key, size: object.Size ?? 0, modifiedAt: object.LastModified ?? new Date(0) };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      if (batch.length === 1) {
        await this.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: batch[0] }));
        continue;
      }
      const result = await this.send(
        new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
      );
      const failed = (result.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        throw new Error(`S3 DeleteObjects failed for ${failed.length} key(s): ${failed[0]?.Key} ${failed[0]?.Code} ${failed[0]?.Message}`);
      }
    }
  }

  // --- keys ------------------------------------------------------------------------------------

  private blobKey(digest: string): string {
    // Callers validate digests, but a key is built from it: refuse anything else here too.
    if (!DIGEST.test(digest)) throw new Error(`invalid digest: ${JSON.stringify(digest)}`);
    const [algo, hex] = digest.split(':') as [string, string];
    return `${this.prefix}blobs/${algo}/${hex.slice(0, 2)}/${hex}`;
  }

  private uploadPrefix(id: string): string {
    if (!UPLOAD_ID.test(id)) throw new Error(`invalid upload id: ${JSON.stringify(id)}`);
    return `${this.prefix}uploads/${id}/`;
  }

  private segmentKey(id: string, offset: number): string {
    return `${this.uploadPrefix(id)}${String(offset).padStart(16, '0')}`;
  }

  private copySource(key: string): string {
    return `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }
}

/** The upload's size: segments in offset order, each cut where the next begins; a gap ends it. */
function storedSize(segments: Segment[]): number {
  let end = 0;
  for (const segment of segments) {
    if (segment.start > end) break;
    end = segment.start + segment.size;
  }
  return end;
}

/** The pieces of segments that make up the first `size` bytes of the upload. */
function pieces(segments: Segment[], size: number): Piece[] {
  const out: Piece[] = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment.start >= size) break;
    const next = segments[i + 1];
    const end = Math.min(segment.start + segment.size, next ? next.start : Infinity, size);
    if (end > segment.start) out.push({ key: segment.key, from: 0, length: end - segment.start, objectSize: segment.size });
  }
  return out;
}

function normalisePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}

function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.$metadata?.httpStatusCode === 404 || e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.name === 'NoSuchUpload' || e?.name === 'NoSuchBucket';
}

/** Node's errors of a connection that failed, was refused or broke. */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/** The object store did not answer, timed out, failed (5xx) or throttled: not the request's fault. */
function isUnavailable(error: unknown): boolean {
  const e = error as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500 || status === 429;
  return (
    (e?.code !== undefined && NETWORK_ERRORS.has(e.code)) ||
    e?.name === 'TimeoutError' ||
    e?.name === 'RequestTimeout' ||
    /socket hang up|ECONNREFUSED|ECONNRESET/.test(e?.message ?? '')
  );
}

function describeS3Error(error: unknown, what: string): Error {
  const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  return new Error(`${what}: ${e?.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${e?.message ?? String(error)}`, { cause: error });
}

/** Runs `work` over `items` with at most `limit` at once; rejects with the first failure. */
async function runLimited<T>(items: T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        await work(items[index]!, index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
}
