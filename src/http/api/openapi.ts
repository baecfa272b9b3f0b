import { z } from 'zod';
import type { ApiRoute } from './routes.js';

type JsonSchema = Record<string, unknown>;

function schemaOf(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete json.$schema;
  return json;
}

const errorSchema: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: ['INVALID', 'UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'TOO_MANY_REQUESTS', 'METHOD_NOT_ALLOWED', 'INTERNAL'] },
        message: { type: 'string' },
        fields: {
          type: 'array',
          description: 'For INVALID: each offending field (dotted path, query parameters as query.<name>) and what is wrong',
          items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
  },
};

/** The OpenAPI 3.1 document of the management API, made from the route table. */
export function openApiDocument(routes: readonly ApiRoute[], prefix: string, version: string): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters: JsonSchema[] = [];
    for (const match of route.path.matchAll(/\{(\w+)\}/g)) {
      const name = match[1]!;
      parameters.push({
        name,
        in: 'path',
        required: true,
        schema: { type: 'string' },
        ...(name === 'repository' ? { description: 'repository name; its slashes stay unencoded', allowReserved: true } : {}),
      });
    }
    if (route.query) {
      const query = schemaOf(route.query) as { properties?: Record<string, JsonSchema>; required?: string[] };
      for (const [name, schema] of Object.entries(query.properties ?? {})) {
        parameters.push({ name, in: 'query', required: query.required?.includes(name) ?? false, schema });
      }
    }
    const success = String(route.status ?? (route.response === 'no content' ? 204 : 200));
    paths[`${prefix}${route.path}`] ??= {};
    paths[`${prefix}${route.path}`]![route.method.toLowerCase()] = {
      tags: [route.tag],
      summary: route.summary,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(route.body) } } } } : {}),
      responses: {
        [success]: { description: route.response },
        default: { description: 'An error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Stowage management API',
      version,
      description:
        'Users, projects, members, robot accounts, personal access tokens, repositories, tags and the audit log. ' +
        'Authenticate with Basic credentials (a password, or a personal access token with the api scope), or with the session ' +
        'cookie from POST /api/v1/session (then send X-CSRF-Token on every request that changes something). ' +
        'Lists take page (from 1) and page_size (1 to 500, default 50) and answer { items, total, page, page_size }.',
    },
    paths,
    components: {
      schemas: { Error: errorSchema },
      securitySchemes: {
        basic: { type: 'http', scheme: 'basic' },
        session: { type: 'apiKey', in: 'cookie', name: 'stowage_session' },
      },
    },
    security: [{ basic: [] }, { session: [] }, {}],
  };
}
