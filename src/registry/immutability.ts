import { projectOf } from '../auth/authorizer.js';
import type { MetadataStore, TagGuard, TagRule } from '../metadata/metadata-store.js';

/**
 * A glob over names: `*` matches any run of characters (slashes included), `?` one character;
 * everything else literally.
 */
export function globMatches(pattern: string, name: string): boolean {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`).test(name);
}

export function describeRule(rule: TagRule): string {
  return `#${rule.id} ${rule.repository}:${rule.tag}`;
}

/**
 * The immutable tag rules that apply to a repository, as a TagGuard for the metadata calls that
 * move or remove tags; undefined when no rule of the repository's project covers it. One query
 * (the project's rules) per tag push, manifest delete or tag delete; reads never ask.
 */
export async function tagGuardFor(metadata: MetadataStore, repository: string): Promise<TagGuard | undefined> {
  const rules = (await metadata.lifecycle.rules(projectOf(repository))).filter((r) => globMatches(r.repository, repository));
  if (rules.length === 0) return undefined;
  return {
    immutable(tag) {
      const rule = rules.find((r) => globMatches(r.tag, tag));
      return rule ? describeRule(rule) : null;
    },
  };
}
