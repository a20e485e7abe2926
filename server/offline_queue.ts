/**
 * Offline delivery: a DM or file frame for a known user who is not online anywhere is stored
 * (ciphertext only, exactly as sent) and delivered in order, once, when the user comes online
 * on any server of the mesh. Queues live in the store and survive restarts.
 *
 * Queues are replicated within the operator's server group: a queued message gets an
 * `entry_id` (the same on every server), is stored here and sent as QUEUE_STORE to every
 * linked group member, and the sender is told "queued" only when every live member has
 * confirmed it (or did not answer within {@linkcode REPLICA_ACK_TIMEOUT_MS}: such a member is
 * treated as down and catches up when it links again). The server the recipient comes online
 * on delivers from its own replica and sends QUEUE_DONE to the group, which drops the entries
 * and remembers their ids, so a member that was down never delivers them again.
 *
 * Waiting for all live members rather than a majority: with three servers a majority of one
 * survivor is itself, so only "all live" keeps a queued message when any single server (the
 * one that accepted it included) is lost for good.
 *
 * @module
 */

import {
  canonicalJson,
  isObject,
  type JsonObject,
  plural,
  ProtocolError,
  sha256Hex,
} from "../shared/mod.ts";
import type { QueuedFrame } from "../storage/mod.ts";
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

/** How long a queued message waits for a group member's confirmation. */
export const REPLICA_ACK_TIMEOUT_MS = 5_000;

/** Most entry ids in one QUEUE_DONE frame. */
const DONE_CHUNK = 500;

/** The id of a queued delivery, the same wherever it is queued: its content signature. */
export async function entryIdOf(d: Delivery): Promise<string> {
  const sig = d.payload["content_sig"];
  const basis = typeof sig === "string" && sig.length > 0
    ? `${d.type}|${d.recipient}|${sig}`
    : canonicalJson({ ...d });
  return await sha256Hex(new TextEncoder().encode(basis));
}

/** The offline queues of one server. */
export class OfflineQueue implements AsyncDisposable {
  #hub: Hub;
  #config: ServerConfig;
  #flushing = new Map<string, Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** `serverId|entryId` → resolves when that member confirmed the entry. */
  #waiting = new Map<string, () => void>();

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

  /**
   * Queues a delivery for a known, offline user, here and on every live member of the server
   * group; throws QUEUE_LIMIT when the queue is full.
   */
  async offline(d: Delivery): Promise<"queued" | "not_found"> {
    const store = this.#hub.store;
    const user = await store.getUser(d.recipient);
    if (!user || user.deleted) return "not_found";
    if ((await store.queueLength(d.recipient)) >= this.#config.queueMaxFrames) {
      throw new ProtocolError(
        "QUEUE_LIMIT",
        `User ${d.recipient} is offline and already has ${
          plural(this.#config.queueMaxFrames, "message")
        } waiting`,
      );
    }
    const entryId = await entryIdOf(d);
    if (await store.isQueueDone(entryId)) return "queued"; // delivered already: a resend
    const item = {
      recipient: d.recipient,
      sender: d.sender,
      frame: JSON.stringify(d),
      queued_at: this.#hub.now(),
      entry_id: entryId,
    };
    await store.enqueue(item);
    await this.#replicate(item);
    return "queued";
  }

  /** Linked servers of the group (they hold replicas). */
  #groupLinks(): string[] {
    const mesh = this.#hub.mesh;
    return mesh ? mesh.linkedServers().filter((id) => mesh.isGroupServer(id)) : [];
  }

  /** The QUEUE_STORE payload of a queued frame. */
  static storePayload(item: Omit<QueuedFrame, "seq">): JsonObject {
    return {
      entry_id: item.entry_id ?? "",
      recipient: item.recipient,
      sender: item.sender,
      frame: item.frame,
      queued_at: item.queued_at,
    };
  }

  /** Sends the entry to every linked group member and waits for their confirmations. */
  async #replicate(item: Omit<QueuedFrame, "seq">): Promise<void> {
    const members = this.#groupLinks();
    if (members.length === 0 || !item.entry_id) return;
    const text = await this.#hub.emit("QUEUE_STORE", "*", OfflineQueue.storePayload(item));
    const waits = members.map((serverId) => {
      const key = `${serverId}|${item.entry_id}`;
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          this.#waiting.delete(key);
          resolve(false);
        }, REPLICA_ACK_TIMEOUT_MS);
        this.#waiting.set(key, () => {
          clearTimeout(timer);
          this.#waiting.delete(key);
          resolve(true);
        });
        if (!this.#hub.mesh?.sendToServer(serverId, text)) this.#waiting.get(key)?.();
      });
    });
    const confirmed = (await Promise.all(waits)).filter((ok) => ok).length;
    if (confirmed < members.length) {
      this.#hub.log.warn(
        `queued message confirmed by ${confirmed} of ${members.length} group servers; ` +
          "the others catch up when they link again",
      );
    }
  }

  /** A group member confirmed an entry (`ACK {msg_ref:"QUEUE_STORED", entry_id}`). */
  confirmed(serverId: string, entryId: string): void {
    this.#waiting.get(`${serverId}|${entryId}`)?.();
  }

  /**
   * QUEUE_STORE from a group member: keeps the replica (unless it was delivered already) and,
   * when the recipient is online here, delivers at once.
   */
  async storeReplica(p: {
    entry_id: string;
    recipient: string;
    sender: string;
    frame: string;
    queued_at: number;
  }): Promise<void> {
    const store = this.#hub.store;
    if (!p.entry_id || toDelivery(p.frame) === undefined) {
      throw new ProtocolError("BAD_FRAME", "QUEUE_STORE carries no readable queued frame");
    }
    if (await store.isQueueDone(p.entry_id)) return;
    const user = await store.getUser(p.recipient);
    if (user?.deleted) return;
    await store.enqueue({
      recipient: p.recipient,
      sender: p.sender,
      frame: p.frame,
      queued_at: p.queued_at || this.#hub.now(),
      entry_id: p.entry_id,
    });
    if (this.#hub.localLink(p.recipient)) await this.flush(p.recipient);
  }

  /** QUEUE_DONE from a group member: these entries were delivered; drop them for good. */
  async doneElsewhere(entryIds: readonly string[]): Promise<void> {
    const dropped = await this.#hub.store.markQueueDone(entryIds, this.#hub.now());
    if (dropped > 0) {
      this.#hub.log.info(`dropped ${dropped} queued frames delivered by another group server`);
    }
  }

  /** Catch-up for a group member that linked: every delivered id, then every queued entry. */
  async syncFrames(): Promise<[string, JsonObject][]> {
    const store = this.#hub.store;
    const out: [string, JsonObject][] = [];
    const done = await store.listQueueDone();
    for (let i = 0; i < done.length; i += DONE_CHUNK) {
      out.push(["QUEUE_DONE", { entry_ids: done.slice(i, i + DONE_CHUNK) }]);
    }
    for (const item of await store.listAllQueue()) {
      if (item.entry_id) out.push(["QUEUE_STORE", OfflineQueue.storePayload(item)]);
    }
    return out;
  }

  /**
   * A user came online somewhere: the server hosting the user delivers from its own replica.
   * A user hosted outside the group gets the queue from the lowest-id group server linked here.
   */
  online(userId: string): Promise<void> {
    const hub = this.#hub;
    if (!hub.localLink(userId)) {
      const where = hub.onlineUser(userId);
      const mesh = hub.mesh;
      if (!where || (mesh && mesh.isGroupServer(where.serverId))) return Promise.resolve();
      const lowest = [hub.serverId, ...this.#groupLinks()].sort()[0];
      if (lowest !== hub.serverId) return Promise.resolve();
    }
    return this.flush(userId);
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
      // Unreadable, or from a sender the recipient blocked since: dropped.
      if (!d || this.#hub.blockLists?.blocks(d.recipient, d.sender)) {
        steps.push({ seq: item.seq, send: undefined });
        continue;
      }
      const routed = this.#hub.route(d);
      if (routed.result !== "local" && routed.result !== "remote") break;
      steps.push({ seq: item.seq, send: routed.send });
    }
    const done: number[] = [];
    const doneIds: string[] = [];
    let delivered = 0;
    for (const step of steps) {
      if (step.send !== undefined) {
        if (!(await step.send)()) break;
        delivered++;
      }
      done.push(step.seq);
      const entryId = items.find((item) => item.seq === step.seq)?.entry_id;
      if (entryId) doneIds.push(entryId);
    }
    await store.deleteQueued(done);
    if (doneIds.length > 0) {
      await store.markQueueDone(doneIds, this.#hub.now());
      for (let i = 0; i < doneIds.length; i += DONE_CHUNK) {
        await this.#hub.gossip("QUEUE_DONE", { entry_ids: doneIds.slice(i, i + DONE_CHUNK) }, {
          groupOnly: true,
        });
      }
    }
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
