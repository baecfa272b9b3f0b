import Fastify, { type FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { lazyChildLogger } from '../../src/http/lazy-logger.js';

function capture(level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

describe('the lazy per-request logger', () => {
  it('writes with the request id binding, and only builds the child when something is logged', () => {
    const { logger, lines } = capture();
    let children = 0;
    const parent = Object.assign(Object.create(logger) as FastifyBaseLogger, {
      child: (...args: Parameters<FastifyBaseLogger['child']>) => {
        children++;
        return logger.child(...args);
      },
    });
    const log = lazyChildLogger(parent, { reqId: 'r-1' }, {});
    expect(children).toBe(0);
    expect(log.level).toBe('info');
    log.debug('not written at info');
    log.warn({ detail: 1 }, 'something');
    log.error('failed');
    expect(children).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({ reqId: 'r-1', level: 40, detail: 1, msg: 'something' }),
      expect.objectContaining({ reqId: 'r-1', level: 50, msg: 'failed' }),
    ]);
  });

  it('serves as Fastify childLoggerFactory: a failing request is logged with its id', async () => {
    const { logger, lines } = capture();
    const app = Fastify({ loggerInstance: logger, disableRequestLogging: true, childLoggerFactory: lazyChildLogger, genReqId: () => 'req-42' });
    // As the registry's error handler does (src/http/errors.ts).
    app.setErrorHandler((error, request, reply) => {
      request.log.error({ err: error }, 'request failed');
      return reply.code(500).send({ error: 'internal' });
    });
    app.get('/fails', async () => {
      throw new Error('boom');
    });
    app.get('/ok', async (request) => {
      request.log.info('handled');
      return { ok: true };
    });
    expect((await app.inject('/fails')).statusCode).toBe(500);
    expect((await app.inject('/ok')).statusCode).toBe(200);
    await app.close();
    expect(lines).toContainEqual(expect.objectContaining({ reqId: 'req-42', level: 50, err: expect.objectContaining({ message: 'boom' }) }));
    expect(lines).toContainEqual(expect.objectContaining({ reqId: 'req-42', level: 30, msg: 'handled' }));
  });
});
