/**
 * One signing scheduler for a whole server.
 *
 * Nearly all of a server's CPU is RSA-PSS signing. Without a shared bound, every connection's
 * frames start their signatures at once: dozens of blocking threads fight over the cores and
 * one busy connection's burst sits in front of everyone else's single frame. The scheduler
 * admits at most `concurrency` signatures at a time (sized to the cores) and picks the next one
 * round-robin across *lanes*, one lane per connection (user or server link), so a quiet user
 * waits for at most one signature per busy lane, not for a busy lane's whole backlog.
 *
 * Which lane a signature belongs to is carried by the async context: a connection runs its
 * frame handling inside {@linkcode SignLane.run}, and every signature started from there (also
 * after awaits and timers) queues on that lane. Work outside any lane (timers, heartbeats)
 * queues on the scheduler's own lane. A lane also reports how long its oldest signature has
 * waited, which connections use to stop reading while their frames wait too long
 * (backpressure): see {@linkcode SignLane.congested}.
 *
 * @example
 * ```ts
 * import { SignScheduler } from "./sign_scheduler.ts";
 *
 * const scheduler = new SignScheduler({ concurrency: 2 });
 * const lane = scheduler.lane("user alice");
 * const value = await lane.run(() => scheduler.schedule(() => Promise.resolve(42)));
 * console.assert(value === 42 && lane.pending === 0);
 * lane[Symbol.dispose]();
 * ```
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";

/** Options for {@linkcode SignScheduler}. */
export interface SignSchedulerOptions {
  /** Most tasks running at once (default {@linkcode defaultSignConcurrency}). */
  concurrency?: number;
  /** Clock in ms for wait times (default `performance.now`). */
  now?: () => number;
}

/**
 * Signatures in flight that keep every core busy: two per core. With exactly one per core a
 * core idles while the JS thread hands it the next call (measured: 247 signs/s with 2 in flight
 * on 2 cores against 339/s with 4, and OpenSSL's own 360/s).
 */
export function defaultSignConcurrency(): number {
  return 2 * Math.max(1, navigator.hardwareConcurrency ?? 1);
}

interface Waiting {
  start: () => void;
  since: number;
}

/** One connection's share of the scheduler. Disposing it drops it from the rotation. */
export class SignLane implements Disposable {
  readonly name: string;
  #scheduler: SignScheduler;
  /** @internal Waiting tasks, first in first out. */
  readonly queue: Waiting[] = [];
  /** @internal Tasks of this lane running now. */
  running = 0;

  /** @internal Made by {@linkcode SignScheduler.lane}. */
  constructor(scheduler: SignScheduler, name: string) {
    this.#scheduler = scheduler;
    this.name = name;
  }

  /** Tasks of this lane waiting or running. */
  get pending(): number {
    return this.queue.length + this.running;
  }

  /** How long this lane's oldest waiting task has waited, in ms (0 when none waits). */
  oldestWaitMs(): number {
    const first = this.queue[0];
    return first === undefined ? 0 : this.#scheduler.now() - first.since;
  }

  /** True when this lane's oldest task has waited longer than `maxWaitMs`. */
  congested(maxWaitMs: number): boolean {
    return this.oldestWaitMs() > maxWaitMs;
  }

  /** Resolves once this lane has at most `count` tasks waiting or running. */
  drainedTo(count: number): Promise<void> {
    return this.#scheduler.drainedTo(this, count);
  }

  /** Runs `fn` so that every task it schedules (also after awaits) queues on this lane. */
  run<T>(fn: () => T): T {
    return this.#scheduler.runIn(this, fn);
  }

  [Symbol.dispose](): void {
    this.#scheduler.forget(this);
  }
}

/** Fair, bounded admission of signing work; see the module doc. */
export class SignScheduler {
  readonly concurrency: number;
  readonly now: () => number;
  #context = new AsyncLocalStorage<SignLane>();
  #own: SignLane;
  /** Lanes with waiting tasks, served in turn from `#next`. */
  #ready: SignLane[] = [];
  #next = 0;
  #running = 0;
  #drainWaiters = new Map<SignLane, { count: number; resolve: () => void }[]>();

  constructor(options: SignSchedulerOptions = {}) {
    const concurrency = options.concurrency ?? defaultSignConcurrency();
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`Signing concurrency must be a positive integer, got ${concurrency}`);
    }
    this.concurrency = concurrency;
    this.now = options.now ?? (() => performance.now());
    this.#own = new SignLane(this, "server");
  }

  /** A lane for one connection; dispose it when the connection ends. */
  lane(name: string): SignLane {
    return new SignLane(this, name);
  }

  /** Tasks running now (at most {@linkcode concurrency}). */
  get running(): number {
    return this.#running;
  }

  /** Tasks waiting for a slot, over all lanes. */
  get waiting(): number {
    let total = this.#own.queue.length;
    for (const lane of this.#ready) if (lane !== this.#own) total += lane.queue.length;
    return total;
  }

  /** Lanes that have tasks waiting now. */
  get busyLanes(): number {
    return this.#ready.length;
  }

  /**
   * Runs `task` once a slot is free, on the current lane (the one whose
   * {@linkcode SignLane.run} this call is inside, else the scheduler's own).
   */
  async schedule<T>(task: () => Promise<T>): Promise<T> {
    const lane = this.#context.getStore() ?? this.#own;
    if (this.#running < this.concurrency && this.#ready.length === 0) {
      this.#running++;
      lane.running++;
    } else {
      await new Promise<void>((start) => {
        if (lane.queue.length === 0) this.#ready.push(lane);
        lane.queue.push({ start, since: this.now() });
      });
    }
    try {
      return await task();
    } finally {
      lane.running--;
      this.#release();
      this.#notify(lane);
    }
  }

  /** @internal See {@linkcode SignLane.run}. */
  runIn<T>(lane: SignLane, fn: () => T): T {
    return this.#context.run(lane, fn);
  }

  /** @internal See {@linkcode SignLane.drainedTo}. */
  drainedTo(lane: SignLane, count: number): Promise<void> {
    if (lane.pending <= count) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.#drainWaiters.get(lane) ?? [];
      list.push({ count, resolve });
      this.#drainWaiters.set(lane, list);
    });
  }

  /** @internal A disposed lane's waiting tasks still run; it just takes no new place. */
  forget(lane: SignLane): void {
    for (const waiter of this.#drainWaiters.get(lane) ?? []) waiter.resolve();
    this.#drainWaiters.delete(lane);
  }

  /** Hands a finished task's slot to the next lane in turn, or frees it. */
  #release(): void {
    if (this.#ready.length === 0) {
      this.#running--;
      return;
    }
    if (this.#next >= this.#ready.length) this.#next = 0;
    const lane = this.#ready[this.#next]!;
    const task = lane.queue.shift()!;
    if (lane.queue.length === 0) this.#ready.splice(this.#next, 1);
    else this.#next++;
    lane.running++;
    task.start();
  }

  #notify(lane: SignLane): void {
    const list = this.#drainWaiters.get(lane);
    if (list === undefined) return;
    const still = list.filter((waiter) => {
      if (lane.pending > waiter.count) return true;
      waiter.resolve();
      return false;
    });
    if (still.length === 0) this.#drainWaiters.delete(lane);
    else this.#drainWaiters.set(lane, still);
  }
}
