// An HTTP proxy on 127.0.0.1 in front of an object store that counts the requests passing
// through it (method and path), to measure what the registry really sends to S3: the count
// cannot miss a request that Stowage's own metrics would not see (retries, SDK internals).
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';

export interface CountedRequest {
  method: string;
  path: string;
}

export class CountingProxy {
  private server: Server | undefined;
  readonly requests: CountedRequest[] = [];

  constructor(private readonly target: URL) {}

  /** Starts listening; resolves to the proxy's endpoint URL (use it as the S3 endpoint). */
  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.requests.push({ method: req.method ?? '?', path: req.url ?? '' });
      const upstream = httpRequest(
        { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers: req.headers },
        (answer: IncomingMessage) => {
          res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((ok, fail) => {
      this.server!.once('error', fail);
      this.server!.listen(0, '127.0.0.1', () => ok());
    });
    const address = this.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    return `http://127.0.0.1:${port}`;
  }

  /** Requests counted so far. */
  get count(): number {
    return this.requests.length;
  }

  /** Requests counted since `mark` (a previous `count`), as "METHOD path" lines, for messages. */
  since(mark: number): string[] {
    return this.requests.slice(mark).map((r) => `${r.method} ${r.path}`);
  }

  async close(): Promise<void> {
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
    this.server?.closeAllConnections();
  }
}
