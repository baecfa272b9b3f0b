/** Manifest media types the registry accepts, and facts about them. */
export const mediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

export const dockerSchema1MediaTypes = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

export type ManifestKind = 'image' | 'index';

export const manifestKinds: Record<string, ManifestKind> = {
  [mediaTypes.ociManifest]: 'image',
  [mediaTypes.dockerManifest]: 'image',
  [mediaTypes.ociIndex]: 'index',
  [mediaTypes.dockerManifestList]: 'index',
};

/**
 * Layers that clients fetch from elsewhere (`urls`), so their blobs need not be in the registry:
 * Docker's foreign layers and OCI's (deprecated) non-distributable layers.
 */
export function isForeignLayer(mediaType: string): boolean {
  return (
    mediaType.startsWith('application/vnd.docker.image.rootfs.foreign.') ||
    mediaType.startsWith('application/vnd.oci.image.layer.nondistributable.')
  );
}
