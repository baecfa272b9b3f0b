import { RegistryError } from './errors.js';

// The distribution-spec grammar: path components of lowercase alphanumerics separated by
// `.`, `_`, `__` or runs of `-`, joined by `/`.
const repositoryPattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const maxRepositoryLength = 255;

export function isRepositoryName(name: string): boolean {
  return name.length <= maxRepositoryLength && repositoryPattern.test(name);
}

export function requireRepositoryName(name: string): string {
  if (!isRepositoryName(name)) {
    throw new RegistryError(
      'NAME_INVALID',
      `invalid repository name: lowercase letters, digits and single separators (. _ __ -) in /-separated components, at most ${maxRepositoryLength} characters`,
      { name: name.slice(0, 300) },
    );
  }
  return name;
}

export function isTag(value: string): boolean {
  return tagPattern.test(value);
}

export function requireTag(value: string): string {
  if (!isTag(value)) {
    throw new RegistryError(
      'TAG_INVALID',
      'invalid tag: 1 to 128 characters of letters, digits, _ . -, not starting with . or -',
      { tag: value.slice(0, 200) },
    );
  }
  return value;
}
