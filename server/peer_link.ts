/**
 * One link to another server: an explicit state machine (handshaking → up → closed), its
 * transport, liveness and heartbeats, and ordered, rate-limited sending of errors.
 *
 * @module
 */

import type { Transport } from "../shared/mod.ts";
import { Heartbeat } from "./heartbeat.ts";
import { mayCarryKey, OrderedSender, type PeerTraits } from "./peer_traits.ts";
import { TokenBucket } from "./rate_limit.ts";

/** Link states. */
export type LinkState = "handshaking" | "up" | "closed";

/** Which side dialled. */
export type LinkDirection = "in" | "out";

/** Options for {@linkcode PeerLink}. */
export interface PeerLinkOptions {
  /** Who dialled. */
  direction: LinkDirection;
  /** Remote address, for logs. */
  remote: string;
  /** Clock (ms). */
  clock?: () => number;
}

/** A link to one server. */
export class PeerLink {
  /** Who dialled. */
  readonly direction: LinkDirection;
  /** Remote address, for logs. */
  readonly remote: string;
  /** The transport. */
  readonly transport: Transport;
  #state: LinkState = "handshaking";
  #serverId: string | undefined;
  #lastSeen: number;
  #clock: () => number;
  #heartbeat: Heartbeat | undefined;
  #errors = new TokenBucket({ rate: 5, burst: 10 });
  /** Deliveries from this link, chained to keep their order. */
  outbox: Promise<void> = Promise.resolve();
  /** What this peer showed of itself (socp or not, key encoding, relay form). */
  traits: PeerTraits = {
    caps: undefined,
    keyEncoding: "der",
    relayForm: "raw",
    relayFormLearned: false,
  };
  /**
   * Re-issues a frame whose keys this peer needs in another encoding (set by the mesh for a
   * peer that writes keys as PEM text); frames keep their order around it.
   */
  rewrite: ((text: string) => Promise<string>) | undefined;
  #sender: OrderedSender;

  /** Wraps a transport in the handshaking state. */
  constructor(transport: Transport, options: PeerLinkOptions) {
    this.transport = transport;
    this.direction = options.direction;
    this.remote = options.remote;
    this.#clock = options.clock ?? Date.now;
    this.#lastSeen = this.#clock();
    this.#sender = new OrderedSender((text) => {
      if (this.#state !== "closed" && this.transport.open) this.transport.send(text);
    });
  }

  /** True when this peer announced socp capabilities. */
  get socp(): boolean {
    return this.traits.caps !== undefined;
  }

  /** Current state. */
  get state(): LinkState {
    return this.#state;
  }

  /** The remote server id once known. */
  get serverId(): string | undefined {
    return this.#serverId;
  }

  /** Milliseconds of the last frame received. */
  get lastSeen(): number {
    return this.#lastSeen;
  }

  /** Records that a frame arrived. */
  touch(): void {
    this.#lastSeen = this.#clock();
  }

  /** handshaking → up, starting heartbeats. */
  up(
    serverId: string,
    heartbeat: { intervalMs: number; deadAfterMs: number; send: () => void; dead: () => void },
  ): void {
    if (this.#state !== "handshaking") throw new Error(`Link to ${serverId} is ${this.#state}`);
    this.#state = "up";
    this.#serverId = serverId;
    this.touch();
    this.#heartbeat = new Heartbeat({
      sendHeartbeat: heartbeat.send,
      lastSeen: () => this.#lastSeen,
      dead: heartbeat.dead,
    }, {
      intervalMs: heartbeat.intervalMs,
      deadAfterMs: heartbeat.deadAfterMs,
      clock: this.#clock,
    });
  }

  /** Sends a frame when the link is not closed. */
  send(text: string): boolean {
    if (this.#state === "closed" || !this.transport.open) return false;
    const rewrite = this.rewrite;
    this.#sender.push(text, rewrite !== undefined && mayCarryKey(text) ? rewrite : undefined);
    return true;
  }

  /** True when another error may be sent now (errors are rate limited per link). */
  mayReportError(): boolean {
    return this.#errors.take();
  }

  /** → closed; stops heartbeats and closes the transport. Idempotent. */
  close(code = 1000, reason = ""): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#heartbeat?.stop();
    this.transport.close(code, reason);
  }
}
