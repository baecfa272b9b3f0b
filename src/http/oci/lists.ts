import { RegistryError } from '../../registry/errors.js';
import { isRepositoryName } from '../../registry/names.js';
import { nextLink, pageSize, type OciContext } from './context.js';

/** GET /v2/<name>/tags/list with n and last. */
export async function listTags({ reply, registry, name, query }: OciContext) {
  const n = validPageSize(query);
  const page = await registry.listing.tags(name, n, query.get('last') ?? undefined);
  if (page.next !== undefined) reply.header('link', nextLink(`/v2/${name}/tags/list`, n, page.next));
  return reply.type('application/json').send({ name, tags: page.items });
}

/** GET /v2/_catalog with n and last. */
export async function listCatalog({ reply, registry, query, auth }: OciContext) {
  const n = validPageSize(query);
  const last = query.get('last') ?? undefined;
  if (last !== undefined && last !== '' && !isRepositoryName(last)) {
    throw new RegistryError('NAME_INVALID', '`last` must be a repository name', { last: last.slice(0, 300) });
  }
  // Only the repositories the caller may pull.
  const page = await registry.listing.catalog(n, last || undefined, await auth.pullFilter());
  if (page.next !== undefined) reply.header('link', nextLink('/v2/_catalog', n, page.next));
  return reply.type('application/json').send({ repositories: page.items });
}

/** GET /v2/<name>/referrers/<digest>, optionally filtered by artifactType. */
export async function listReferrers({ reply, registry, name, param, query }: OciContext) {
  const artifactType = query.get('artifactType') ?? undefined;
  const index = await registry.listing.referrers(name, param, artifactType);
  if (artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType');
  // A Buffer, so that Fastify does not append `; charset=utf-8`: clients and the conformance
  // suite expect the bare media type.
  return reply.type(index.mediaType).send(Buffer.from(JSON.stringify(index)));
}

function validPageSize(query: URLSearchParams): number | undefined {
  const n = pageSize(query);
  if (Number.isNaN(n)) throw new RegistryError('UNSUPPORTED', '`n` must be a non-negative integer', { n: query.get('n') }, undefined, 400);
  return n;
}
