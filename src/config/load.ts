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
      const where = origin.get(key) ?? (file ? `config file ${file}` : 'defaults');
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
  };
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
