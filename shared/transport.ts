/**
 * The transport seam: routing and session logic see only {@linkcode Transport}, never a
 * `WebSocket`. {@linkcode webSocketTransport} adapts an already-created WebSocket (browser or
 * Deno, client or server side); {@linkcode memoryTransportPair} connects two ends in memory
 * for tests. This module opens no connections itself.
 *
 * @module
 */

import { Fifo } from "./_fifo.ts";

/** How a transport closed. */
export interface CloseInfo {
  /** WebSocket close code (1000 normal, 1006 abnormal). */
  code: number;
  /** Close reason text. */
  reason: string;
}

/** A bidirectional, message-oriented text channel. */
export interface Transport extends AsyncDisposable {
  /** Sends one text frame; silently dropped once closing. */
  send(text: string): void;
  /** Incoming text frames, in order; ends when the transport closes. */
  [Symbol.asyncIterator](): AsyncIterator<string>;
  /** Starts a close handshake. */
  close(code?: number, reason?: string): void;
  /** Resolves once closed. */
  readonly closed: Promise<CloseInfo>;
  /** True until closing starts. */
  readonly open: boolean;
  /** Bytes queued but not yet sent (for flow control). */
  readonly bufferedAmount: number;
}

/** A queue of incoming frames with an async iterator. */
class Inbox {
  #items = new Fifo<string>();
  #waiters: ((r: IteratorResult<string>) => void)[] = [];
  #done = false;
  /** Characters of the frames waiting to be read. */
  queuedChars = 0;
  push(item: string): void {
    if (this.#done) return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter({ value: item, done: false });
    else {
      this.#items.push(item);
      this.queuedChars += item.length;
    }
  }
  end(): void {
    this.#done = true;
    for (const w of this.#waiters.splice(0)) w({ value: undefined, done: true });
  }
  next(): Promise<IteratorResult<string>> {
    const item = this.#items.shift();
    if (item !== undefined) {
      this.queuedChars -= item.length;
      return Promise.resolve({ value: item, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

/** Options for {@linkcode webSocketTransport}. */
export interface WebSocketTransportOptions {
  /**
   * Most characters of received frames waiting to be read. A WebSocket cannot stop reading its
   * socket, so a peer that keeps sending while its frames are not read (backpressure) would grow
   * this queue without end; past the limit the connection is closed with code 1008. A
   * function is asked at each frame (the limit may change once the peer is known). Default: no
   * limit.
   */
  maxQueuedChars?: number | (() => number);
}

/**
 * Adapts a WebSocket. Binary messages are decoded as UTF-8 text. The socket may still be
 * connecting: frames sent before it opens are queued until it does.
 *
 * @example
 * ```ts
 * import { webSocketTransport } from "./transport.ts";
 * console.assert(typeof webSocketTransport === "function");
 * ```
 */
export function webSocketTransport(
  ws: WebSocket,
  options: WebSocketTransportOptions = {},
): Transport {
  const inbox = new Inbox();
  const limit = options.maxQueuedChars ?? Infinity;
  const maxQueued = typeof limit === "number" ? () => limit : limit;
  const pending: string[] = [];
  let resolveClosed!: (info: CloseInfo) => void;
  const closed = new Promise<CloseInfo>((resolve) => (resolveClosed = resolve));
  let closing = false;
  ws.binaryType = "arraybuffer";
  ws.addEventListener("open", () => {
    for (const text of pending.splice(0)) ws.send(text);
  });
  ws.addEventListener("message", (event: MessageEvent) => {
    if (closing) return;
    const data = event.data;
    if (typeof data === "string") inbox.push(data);
    else if (data instanceof ArrayBuffer) inbox.push(new TextDecoder().decode(data));
    if (inbox.queuedChars > maxQueued()) {
      transport.close(1008, "Frames sent faster than they are handled");
    }
  });
  ws.addEventListener("close", (event: CloseEvent) => {
    closing = true;
    inbox.end();
    resolveClosed({ code: event.code, reason: event.reason });
  });
  ws.addEventListener("error", () => {
    // A close event always follows; nothing to do here.
  });
  const transport: Transport = {
    send(text: string): void {
      if (closing) return;
      if (ws.readyState === WebSocket.CONNECTING) pending.push(text);
      else if (ws.readyState === WebSocket.OPEN) ws.send(text);
    },
    [Symbol.asyncIterator]: () => ({ next: () => inbox.next() }),
    close(code = 1000, reason = ""): void {
      if (closing) return;
      closing = true;
      try {
        ws.close(code, reason);
      } catch {
        ws.close();
      }
    },
    closed,
    get open() {
      return !closing && ws.readyState !== WebSocket.CLOSED;
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    async [Symbol.asyncDispose]() {
      transport.close(1000, "");
      await closed;
    },
  };
  return transport;
}

/**
 * Two connected in-memory transports, for tests.
 *
 * @example
 * ```ts
 * import { memoryTransportPair } from "./transport.ts";
 * const [a, b] = memoryTransportPair();
 * a.send("hi");
 * const first = await b[Symbol.asyncIterator]().next();
 * console.assert(first.value === "hi");
 * a.close();
 * await b.closed;
 * ```
 */
export function memoryTransportPair(): [Transport, Transport] {
  const make = () => {
    const inbox = new Inbox();
    let resolveClosed!: (info: CloseInfo) => void;
    const closed = new Promise<CloseInfo>((resolve) => (resolveClosed = resolve));
    return { inbox, closed, resolveClosed, closing: false };
  };
  const ends = [make(), make()] as const;
  const finish = (info: CloseInfo) => {
    for (const end of ends) {
      end.closing = true;
      end.inbox.end();
      end.resolveClosed(info);
    }
  };
  return ends.map((self, i) => {
    const other = ends[1 - i]!;
    const t: Transport = {
      send(text: string): void {
        if (!self.closing) queueMicrotask(() => other.inbox.push(text));
      },
      [Symbol.asyncIterator]: () => ({ next: () => self.inbox.next() }),
      close(code = 1000, reason = ""): void {
        if (self.closing) return;
        self.closing = true;
        queueMicrotask(() => finish({ code, reason }));
      },
      closed: self.closed,
      get open() {
        return !self.closing;
      },
      bufferedAmount: 0,
      async [Symbol.asyncDispose]() {
        t.close();
        await self.closed;
      },
    };
    return t;
  }) as [Transport, Transport];
}
