// Network faults between the client and a live node, made with real TCP
// sockets (no mocked fetch): a proxy that loses answers, and a server that
// never answers.
import net from 'node:net';

export interface DroppingProxy {
  url: string;
  /** The raw bytes each connection carried to the node, in connection order. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of `port` that lets the first `drop` connections'
 * requests reach the node, then cuts the client's connection the moment
 * the node's answer starts — the request was served, its answer lost: what
 * a retry must not turn into a second message.
 */
export async function droppingProxy(port: number, drop = 1): Promise<DroppingProxy> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  let seen = 0;
  const server = net.createServer((client) => {
    const index = seen++;
    const cut = index < drop;
    requests[index] = '';
    const up = net.connect(port, '127.0.0.1');
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('data', (d) => {
      requests[index] += d.toString('latin1');
      up.write(d);
    });
    up.on('data', (d) => {
      if (cut) {
        client.destroy();
        up.destroy();
      } else {
        client.write(d);
      }
    });
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port: own } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${own}`,
    requests,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface SilentServer {
  url: string;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** Accepts connections, reads what comes, and never answers. */
export async function silentServer(): Promise<SilentServer> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    accepted: () => accepted,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
