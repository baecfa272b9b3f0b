import { z } from 'zod';
import { duration } from '../config/primitives.js';
import { parsePermission, ScopeError } from '../auth/access.js';
import { passwordRules } from '../auth/secrets.js';
import { roles } from '../auth/authorizer.js';
import { ControlError } from './errors.js';

/** Parses `input` with `schema`, or throws ControlError('invalid') naming each offending field. */
export function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw ControlError.fromZod(result.error);
  return result.data;
}

export const userName = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/, 'lowercase letters, digits and . _ - (not at either end), 1 to 64 characters');

export const password = z
  .string()
  .min(passwordRules.min, `at least ${passwordRules.min} characters`)
  .max(passwordRules.max, `at most ${passwordRules.max} characters`);

/** A project is a repository name's first component. */
export const projectName = z
  .string()
  .max(64, 'at most 64 characters')
  .regex(/^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/, 'lowercase letters and digits, separated by single . _ __ or runs of -');

export const robotShortName = z.string().regex(/^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/, 'lowercase letters, digits and . _ -, 1 to 64 characters');

export const role = z.enum(roles as [string, ...string[]], { error: `one of ${roles.join(', ')}` });

export const permission = z.string().superRefine((value, ctx) => {
  try {
    parsePermission(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: error instanceof ScopeError ? error.message : String(error) });
  }
});

/** A lifetime: a duration such as 30d, at most a year. */
export const lifetime = duration.refine((ms) => ms >= 60_000 && ms <= 366 * 86_400_000, 'between 1m and 366d');

export const newUserInput = z
  .object({
    name: userName,
    password: password.optional(),
    email: z.email().max(320).nullable().optional(),
    admin: z.boolean().optional(),
  })
  .strict();

export const userChangesInput = z
  .object({
    email: z.email().max(320).nullable().optional(),
    admin: z.boolean().optional(),
    disabled: z.boolean().optional(),
  })
  .strict();

export const passwordChangeInput = z
  .object({
    password,
    currentPassword: z.string().max(passwordRules.max).optional(),
  })
  .strict();

export const newProjectInput = z
  .object({
    name: projectName,
    public: z.boolean().default(false),
    /** Owner other than the creator (system admins only). */
    owner: userName.optional(),
  })
  .strict();

export const projectChangesInput = z.object({ public: z.boolean() }).strict();

export const memberInput = z.object({ role }).strict();

export const newRobotInput = z
  .object({
    name: robotShortName,
    /** The project it belongs to; omitted for a system robot (admins only). */
    project: projectName.optional(),
    permissions: z.array(permission).min(1, 'at least one permission').max(100),
    description: z.string().max(500).optional(),
    /** Lifetime (e.g. 30d); omitted: the robot does not expire. */
    expiresIn: lifetime.optional(),
  })
  .strict();

export const newTokenInput = z
  .object({
    name: z.string().min(1).max(100),
    /** `api` and/or repository permissions. */
    scopes: z
      .array(z.union([z.literal('api'), permission]))
      .min(1, 'at least one scope: api or repository:<pattern>:<actions>')
      .max(100),
    /** Lifetime, default 90d, at most 366d: tokens always expire. */
    expiresIn: lifetime.prefault('90d'),
    /** Another user's token (system admins only). */
    user: userName.optional(),
  })
  .strict();
