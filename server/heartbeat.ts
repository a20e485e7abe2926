/**
 * Link liveness: send a heartbeat every interval; declare the link dead after a silence.
 *
 * @module
 */

/** What a heartbeat needs from its link. */
export interface HeartbeatTarget {
  /** Sends one HEARTBEAT frame. */
  sendHeartbeat(): void;
  /** Milliseconds of the last frame received. */
  lastSeen(): number;
  /** Called once when the link has been silent too long. */
  dead(): void;
}

/**
 * Drives one link's heartbeats.
 *
 * @example
 * ```ts
 * import { Heartbeat } from "./heartbeat.ts";
 * const hb = new Heartbeat({ sendHeartbeat() {}, lastSeen: () => Date.now(), dead() {} }, { intervalMs: 1000, deadAfterMs: 3000 });
 * hb.stop();
 * ```
 */
export class Heartbeat {
  #timer: ReturnType<typeof setInterval> | undefined;
  #target: HeartbeatTarget;
  #deadAfter: number;
  #clock: () => number;

  /** Starts at once. The check runs every `intervalMs / 3` (at least every second). */
  constructor(
    target: HeartbeatTarget,
    options: { intervalMs: number; deadAfterMs: number; clock?: () => number },
  ) {
    this.#target = target;
    this.#deadAfter = options.deadAfterMs;
    this.#clock = options.clock ?? Date.now;
    let lastBeat = this.#clock();
    const tick = Math.max(5, Math.min(1000, Math.floor(options.intervalMs / 3)));
    this.#timer = setInterval(() => {
      const now = this.#clock();
      if (now - this.#target.lastSeen() >= this.#deadAfter) {
        this.stop();
        this.#target.dead();
        return;
      }
      if (now - lastBeat >= options.intervalMs) {
        lastBeat = now;
        this.#target.sendHeartbeat();
      }
    }, tick);
  }

  /** Stops the timer. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
