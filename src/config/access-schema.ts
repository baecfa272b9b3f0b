import { isIP } from 'node:net';
import { z } from 'zod';
import { boolean, duration } from './primitives.js';

const positiveInt = z.coerce.number().int().min(1).max(1_000_000);

/**
 * Identity and access control. `auth: none` in a file (or STOWAGE_AUTH=none) turns it off.
 * Every duration is in milliseconds after parsing.
 */
export const authSchema = z.preprocess(
  (value) => (typeof value === 'string' ? { mode: value } : value),
  z
    .object({
      /** `token`: Docker token authentication (the default); `none`: open access, for trusted networks only. */
      mode: z.enum(['token', 'none']).default('token'),
      /** The `service` of the challenge and the `aud` of tokens. */
      service: z.string().min(1).max(200).default('stowage'),
      /** The `iss` of tokens. */
      issuer: z.string().min(1).max(200).default('stowage'),
      /** Absolute token endpoint URL for the challenge; by default derived from each request (`<scheme>://<host>/auth/token`). */
      realm: z.url({ protocol: /^https?$/, error: 'expected an absolute http(s) URL' }).optional(),
      /** Lifetime of bearer tokens; the token spec asks for at least 60 s. */
      tokenTtl: duration.prefault('5m').refine((ms) => ms >= 60_000 && ms <= 86_400_000, 'must be between 60s and 24h'),
      refreshTokenTtl: duration.prefault('30d'),
      sessionTtl: duration.prefault('12h'),
      /** Accept HTTP Basic credentials directly on /v2/ (for simple clients and scripts). */
      basicOnRegistry: boolean.default(false),
      /** Who may create projects, explicitly or by pushing to a project that does not exist. */
      projectCreation: z.enum(['admins', 'users']).default('admins'),
      /** Password of the `admin` user created at first start (otherwise generated). */
      adminPassword: z.string().min(8, 'must have at least 8 characters').max(1024).optional(),
      /** Where the generated admin password is written (mode 0600); default `<dataDir>/admin-password`. */
      adminPasswordFile: z.string().min(1).optional(),
      loginFailures: z
        .object({
          perUser: positiveInt.default(10),
          perAddress: positiveInt.default(50),
          window: duration.prefault('15m'),
        })
        .strict()
        .prefault({}),
    })
    .strict(),
);

/** An IP address, a CIDR range or one of proxy-addr's names (loopback, linklocal, uniquelocal). */
const proxyEntry = z.string().refine((value) => {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(value)) return true;
  const [address, prefix, ...rest] = value.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128));
}, 'expected IP addresses or CIDR ranges (e.g. 10.0.0.0/8), or loopback, linklocal, uniquelocal');

/** Proxies whose X-Forwarded-For/-Proto/-Host are believed; a comma-separated list in the environment. */
export const trustedProxiesSchema = z
  .union([z.array(proxyEntry), z.string().transform((s) => s.split(',').map((p) => p.trim()).filter(Boolean)).pipe(z.array(proxyEntry))])
  .default([]);

/** HTTPS: both files or neither; reloaded on SIGHUP. */
export const tlsSchema = z
  .object({
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** Strict-Transport-Security max-age sent on HTTPS responses; 0 turns it off. */
    hsts: duration.prefault('365d'),
  })
  .strict()
  .refine((tls) => (tls.cert === undefined) === (tls.key === undefined), {
    message: 'tls.cert and tls.key go together: set both or neither',
    path: ['cert'],
  })
  .prefault({});

export const auditSchema = z
  .object({
    /** Entries older than this are removed. */
    retention: duration.prefault('90d'),
    /** Record every manifest pull (one entry per manifest GET; batched writes). */
    pulls: boolean.default(true),
  })
  .strict()
  .prefault({});

/** Settings of the sections above, for the environment, the flags and --help (see schema.ts). */
export const accessSettings = [
  { key: 'auth.mode', env: 'STOWAGE_AUTH', flag: '--auth <mode>', help: 'token (Docker token authentication) or none (open access; logged as a warning) (default token)' },
  { key: 'auth.service', env: 'STOWAGE_AUTH_SERVICE', flag: '--auth-service <name>', help: 'service name in challenges and token audience (default stowage)' },
  { key: 'auth.realm', env: 'STOWAGE_AUTH_REALM', flag: '--auth-realm <url>', help: 'token endpoint URL in challenges (default <scheme>://<host>/auth/token of the request)' },
  { key: 'auth.tokenTtl', env: 'STOWAGE_AUTH_TOKEN_TTL', flag: '--token-ttl <duration>', help: 'lifetime of bearer tokens, 60s to 24h (default 5m)' },
  { key: 'auth.basicOnRegistry', env: 'STOWAGE_AUTH_BASIC', flag: '--auth-basic <bool>', help: 'also accept Basic credentials directly on /v2/ (default false)' },
  { key: 'auth.projectCreation', env: 'STOWAGE_PROJECT_CREATION', flag: '--project-creation <who>', help: 'who may create projects (also by pushing): admins or users (default admins)' },
  { key: 'auth.adminPasswordFile', env: 'STOWAGE_ADMIN_PASSWORD_FILE', flag: '--admin-password-file <file>', help: 'where a generated admin password is written (default <data-dir>/admin-password)' },
  { key: 'auth.loginFailures.perUser', env: 'STOWAGE_LOGIN_FAILURES_PER_USER', flag: '--login-failures-per-user <n>', help: 'failed logins of one user name per window before 429 (default 10)' },
  { key: 'auth.loginFailures.perAddress', env: 'STOWAGE_LOGIN_FAILURES_PER_ADDRESS', flag: '--login-failures-per-address <n>', help: 'failed logins from one address per window before 429 (default 50)' },
  { key: 'auth.loginFailures.window', env: 'STOWAGE_LOGIN_FAILURES_WINDOW', flag: '--login-failures-window <duration>', help: 'the window of the failed-login limits (default 15m)' },
  { key: 'tls.cert', env: 'STOWAGE_TLS_CERT', flag: '--tls-cert <file>', help: 'PEM certificate (chain): serve HTTPS; reloaded on SIGHUP' },
  { key: 'tls.key', env: 'STOWAGE_TLS_KEY', flag: '--tls-key <file>', help: 'PEM private key of --tls-cert' },
  { key: 'tls.hsts', env: 'STOWAGE_TLS_HSTS', flag: '--tls-hsts <duration>', help: 'Strict-Transport-Security max-age on HTTPS, 0 for none (default 365d)' },
  { key: 'trustedProxies', env: 'STOWAGE_TRUSTED_PROXIES', flag: '--trusted-proxies <list>', help: 'comma-separated proxy addresses/CIDRs whose X-Forwarded-* headers are trusted (default none)' },
  { key: 'audit.retention', env: 'STOWAGE_AUDIT_RETENTION', flag: '--audit-retention <duration>', help: 'how long audit log entries are kept (default 90d)' },
  { key: 'audit.pulls', env: 'STOWAGE_AUDIT_PULLS', flag: '--audit-pulls <bool>', help: 'record every manifest pull in the audit log (default true)' },
] as const;
