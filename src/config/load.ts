import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configSchema, settings, type Config } from './schema.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** Path of a YAML file (from --config or STOWAGE_CONFIG). */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, by config key (e.g. `dataDir`, `log.level`). */
  flags?: Record<string, string | undefined>;
}

export interface ResolvedConfig extends Config {
  storagePath: string;
  metadataPath: string;
  /** Where a generated admin password is written. */
  adminPasswordFile: string;
}

/**
 * The only reader of configuration: file, then environment, then flags, each overriding the
 * one before. Throws ConfigError naming the key, where it came from and what is expected.
 */
export function loadConfig(sources: ConfigSources = {}): ResolvedConfig {
  const env = sources.env ?? process.env;
  const origin = new Map<string, string>();
  const raw: Record<string, unknown> = {};

  const file = sources.file ?? env.STOWAGE_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${file} must hold a YAML mapping`);
      Object.assign(raw, parsed);
    }
  }
  // `auth: none` in a file is short for `auth: { mode: none }`; the settings below may add keys.
  if (typeof raw.auth === 'string') raw.auth = { mode: raw.auth };
  // A secret: from the environment or the file only, never a flag (flags show in `ps`).
  if (env.STOWAGE_ADMIN_PASSWORD) {
    setPath(raw, 'auth.adminPassword', env.STOWAGE_ADMIN_PASSWORD);
    origin.set('auth.adminPassword', 'environment variable STOWAGE_ADMIN_PASSWORD');
  }
  for (const setting of settings) {
    const fromEnv = env[setting.env];
    if (fromEnv !== undefined && fromEnv !== '') {
      setPath(raw, setting.key, fromEnv);
      origin.set(setting.key, `environment variable ${setting.env}`);
    }
    const fromFlag = sources.flags?.[setting.key];
    if (fromFlag !== undefined) {
      setPath(raw, setting.key, fromFlag);
      origin.set(setting.key, `flag ${setting.flag.split(' ')[0]}`);
    }
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = issue.path.join('.') || '(root)';
      const where = originOf(origin, issue.path.map(String)) ?? (file ? `config file ${file}` : 'defaults');
      const message = issue.code === 'unrecognized_keys' ? `unknown setting(s) ${issue.keys.join(', ')}` : issue.message;
      return `  ${key}: ${message} (from ${where})`;
    });
    throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`);
  }
  const config = result.data;
  const dataDir = resolve(config.dataDir);
  return {
    ...config,
    dataDir,
    storagePath: resolve(config.storage.path ?? `${dataDir}/storage`),
    metadataPath: resolve(config.metadata.path ?? `${dataDir}/stowage.db`),
    adminPasswordFile: resolve(config.auth.adminPasswordFile ?? `${dataDir}/admin-password`),
  };
}

/** Where the value at `path` (or the setting that holds it, e.g. a list) came from. */
function originOf(origin: Map<string, string>, path: string[]): string | undefined {
  for (let n = path.length; n > 0; n--) {
    const found = origin.get(path.slice(0, n).join('.'));
    if (found) return found;
  }
  return undefined;
}

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}
