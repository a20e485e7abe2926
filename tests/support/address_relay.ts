/**
 * A TCP relay that makes a test client appear to a server from another loopback address:
 * {@linkcode startAddressRelay} listens on 127.0.0.1 and opens, for every connection it
 * accepts, a connection to the target whose local address is `from` (e.g. 127.0.0.2), so the
 * server sees that address as the client's. Deno's own `connect` cannot choose a local
 * address; `node:net` can.
 *
 * @module
 */

import net from "node:net";

/** A running relay; disposing it closes the listener and every relayed connection. */
export interface AddressRelay extends AsyncDisposable {
  /** `ws://127.0.0.1:<port>`: dial this instead of the server. */
  readonly url: string;
}

/** Starts a relay to `127.0.0.1:targetPort` whose outgoing connections come from `from`. */
export function startAddressRelay(targetPort: number, from: string): AddressRelay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<{ close(): void }>();
  const done = (async () => {
    for await (const inbound of listener) {
      const outbound = net.connect({ host: "127.0.0.1", port: targetPort, localAddress: from });
      const pair = {
        close() {
          try {
            inbound.close();
          } catch {
            // already closed
          }
          outbound.destroy();
        },
      };
      open.add(pair);
      outbound.on("data", (chunk: Uint8Array) => {
        inbound.write(chunk).catch(() => pair.close());
      });
      outbound.on("close", () => {
        open.delete(pair);
        pair.close();
      });
      outbound.on("error", () => pair.close());
      (async () => {
        const buffer = new Uint8Array(64 * 1024);
        try {
          while (true) {
            const n = await inbound.read(buffer);
            if (n === null) break;
            outbound.write(buffer.slice(0, n));
          }
        } catch {
          // the inbound side was closed
        }
        pair.close();
      })();
    }
  })().catch(() => {});
  return {
    url: `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const pair of open) pair.close();
      await done;
    },
  };
}
