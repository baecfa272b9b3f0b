// A TCP proxy on 127.0.0.1 in front of a service (PostgreSQL, S3), to inject faults:
//   pass      forward bytes both ways
//   refuse    cut every connection and reset new ones (the service is down)
//   hang      accept, but forward nothing either way (the service or the network is stuck)
//   http-503  answer every HTTP request with 503 Slow Down (an overloaded object store)
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type FaultMode = 'pass' | 'refuse' | 'hang' | 'http-503';

export class FaultProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<{ client: Socket; upstream?: Socket }>();
  private current: FaultMode = 'pass';
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  get mode(): FaultMode {
    return this.current;
  }

  async start(): Promise<number> {
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((ok, fail) => {
      this.server!.once('error', fail);
      this.server!.listen(0, '127.0.0.1', () => ok());
    });
    const address = this.server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
    return this.port;
  }

  /** Switches mode; any mode but `pass` first cuts the connections in flight. */
  setMode(mode: FaultMode): void {
    this.current = mode;
    if (mode === 'pass') return;
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.setMode('refuse');
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
  }

  private accept(client: Socket): void {
    client.on('error', () => undefined);
    const pair: { client: Socket; upstream?: Socket } = { client };
    this.pairs.add(pair);
    client.once('close', () => {
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    });
    switch (this.current) {
      case 'refuse':
        client.resetAndDestroy();
        return;
      case 'hang':
        client.resume(); // read and drop
        return;
      case 'http-503':
        client.once('data', () => {
          const body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected fault</Message></Error>';
          client.end(`HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
        });
        return;
      case 'pass': {
        const upstream = createConnection({ host: this.targetHost, port: this.targetPort });
        pair.upstream = upstream;
        upstream.on('error', () => client.destroy());
        upstream.once('close', () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
      }
    }
  }
}
