import { BlobService } from './blobs.js';
import { ListingService } from './listing.js';
import { ManifestService } from './manifests.js';
import { UploadService } from './uploads.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { nodeName } from '../events/context.js';

/** The OCI registry domain, over any BlobStore and MetadataStore. */
export interface Registry {
  blobs: BlobService;
  uploads: UploadService;
  manifests: ManifestService;
  listing: ListingService;
  /** This node's name, recorded with every change (tag history, events). */
  node: string;
}

export function createRegistry(blobStore: BlobStore, metadata: MetadataStore, node: string = nodeName()): Registry {
  return {
    blobs: new BlobService(blobStore, metadata),
    uploads: new UploadService(blobStore, metadata),
    manifests: new ManifestService(metadata),
    listing: new ListingService(metadata),
    node,
  };
}
