/**
 * Offline delivery: a DM or file frame for a known user who is not online anywhere is stored
 * (ciphertext only, exactly as sent) and delivered in order, once, when the user comes online
 * on any server of the mesh. Queues live in the store and survive restarts.
 *
 * @module
 */

import { isObject, type JsonObject, ProtocolError } from "../shared/mod.ts";
import type { ServerConfig } from "./config.ts";
import type { Delivery, DeliveryType, Hub } from "./hub.ts";
import { short } from "./log.ts";

const TYPES: ReadonlySet<string> = new Set([
  "MSG_DIRECT",
  "MSG_PUBLIC_CHANNEL",
  "FILE_START",
  "FILE_CHUNK",
  "FILE_END",
]);

function toDelivery(text: string): Delivery | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    if (!isObject(v)) return undefined;
    const { type, sender, recipient, ts, payload } = v;
    if (
      typeof type !== "string" || !TYPES.has(type) || typeof sender !== "string" ||
      typeof recipient !== "string" || typeof ts !== "number" || !isObject(payload)
    ) return undefined;
    return { type: type as DeliveryType, sender, recipient, ts, payload: payload as JsonObject };
  } catch {
    return undefined;
  }
}

/** The offline queues of one server. */
export class OfflineQueue implements AsyncDisposable {
  #hub: Hub;
  #config: ServerConfig;
  #flushing = new Map<string, Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Creates the queue service and starts hourly expiry. */
  constructor(hub: Hub, config: ServerConfig) {
    this.#hub = hub;
    this.#config = config;
    this.#timer = setInterval(() => this.prune().catch(() => {}), 3_600_000);
  }

  /** Drops frames older than the age cap; returns how many. */
  async prune(): Promise<number> {
    const n = await this.#hub.store.pruneQueue(this.#hub.now() - this.#config.queueMaxAgeMs);
    if (n > 0) this.#hub.log.info(`expired ${n} queued frames`);
    return n;
  }

  /** Queues a delivery for a known, offline user; throws QUEUE_LIMIT when the queue is full. */
  async offline(d: Delivery): Promise<"queued" | "not_found"> {
    const store = this.#hub.store;
    const user = await store.getUser(d.recipient);
    if (!user || user.deleted) return "not_found";
    if ((await store.queueLength(d.recipient)) >= this.#config.queueMaxFrames) {
      throw new ProtocolError(
        "QUEUE_LIMIT",
        `User ${d.recipient} is offline and already has ${this.#config.queueMaxFrames} messages waiting`,
      );
    }
    await store.enqueue({
      recipient: d.recipient,
      sender: d.sender,
      frame: JSON.stringify(d),
      queued_at: this.#hub.now(),
    });
    return "queued";
  }

  /** Delivers everything queued for a user who came online (one flush at a time per user). */
  flush(userId: string): Promise<void> {
    const running = this.#flushing.get(userId);
    if (running) return running.then(() => this.flush(userId));
    const task = this.#flush(userId).finally(() => this.#flushing.delete(userId));
    this.#flushing.set(userId, task);
    return task;
  }

  async #flush(userId: string): Promise<void> {
    const store = this.#hub.store;
    const items = await store.listQueue(userId);
    if (items.length === 0) return;
    // Sign everything at once, send in order, and delete only what was handed to a live link:
    // if the user's link goes away mid-flush, the rest stays queued for the next time.
    const steps: { seq: number; send: Promise<() => boolean> | undefined }[] = [];
    for (const item of items) {
      const d = toDelivery(item.frame);
      if (!d) {
        steps.push({ seq: item.seq, send: undefined }); // unreadable: dropped
        continue;
      }
      const routed = this.#hub.route(d);
      if (routed.result !== "local" && routed.result !== "remote") break;
      steps.push({ seq: item.seq, send: routed.send });
    }
    const done: number[] = [];
    let delivered = 0;
    for (const step of steps) {
      if (step.send !== undefined) {
        if (!(await step.send)()) break;
        delivered++;
      }
      done.push(step.seq);
    }
    await store.deleteQueued(done);
    this.#hub.log.info(
      `delivered ${delivered} queued frames to ${short(userId)}` +
        (done.length < items.length ? `; ${items.length - done.length} still queued` : ""),
    );
  }

  /** Stops the expiry timer. */
  [Symbol.asyncDispose](): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    return Promise.resolve();
  }
}
