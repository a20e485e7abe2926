/**
 * Who else is here, and who was: `/whoelse` (the other users online now, from a fresh
 * `LIST_RESPONSE`) and `/whoelsesince <seconds>` (everyone online at any moment of the last N
 * seconds, including those online now, from `PRESENCE_SINCE_RESPONSE`). The server leaves out
 * the asker and users who blocked the asker in both answers.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import type { Connection, Identity } from "./connection.ts";
import { CommandError } from "./errors.ts";
import type { Presence } from "./presence.ts";
import type { NamedUser, SeenUser } from "./social_events.ts";

/** The longest window `/whoelsesince` accepts (366 days, the server's cap). */
export const MAX_SINCE_SECONDS = 366 * 86_400;

/**
 * Parses the `<seconds>` of `/whoelsesince`: a whole number from 0 to
 * {@linkcode MAX_SINCE_SECONDS}. Throws {@linkcode CommandError} saying what is wrong.
 *
 * @example
 * ```ts
 * import { parseSeconds } from "./presence_history.ts";
 * console.assert(parseSeconds("90") === 90);
 * try { parseSeconds("ten"); } catch (e) { console.assert((e as Error).message.includes('"ten"')); }
 * ```
 */
export function parseSeconds(text: string): number {
  const t = text.trim();
  if (!/^\d+$/.test(t)) {
    throw new CommandError(
      `"${t}" is not a number of seconds; use a whole number, e.g. /whoelsesince 300`,
    );
  }
  const n = Number(t);
  if (!Number.isSafeInteger(n) || n > MAX_SINCE_SECONDS) {
    throw new CommandError(`"${t}" seconds is too long; at most ${MAX_SINCE_SECONDS} (366 days)`);
  }
  return n;
}

/** Options for {@linkcode PresenceHistory}. */
export interface PresenceHistoryOptions {
  /** The user. */
  identity: Identity;
  /** Requests go here. */
  connection: Connection;
  /** Names users (and learns names from the answers). */
  presence: Presence;
  /** Time source (how long ago a user was seen). */
  clock: Clock;
}

/**
 * `/whoelse` and `/whoelsesince`.
 *
 * @example
 * ```ts ignore
 * const history = new PresenceHistory({ identity, connection, presence, clock: systemClock });
 * const recent = await history.since(600);
 * ```
 */
export class PresenceHistory {
  #o: PresenceHistoryOptions;

  /** Creates the feature. */
  constructor(options: PresenceHistoryOptions) {
    this.#o = options;
  }

  /** `/whoelse`: the other users online now, sorted by name. */
  async whoElse(): Promise<NamedUser[]> {
    const { connection, presence, identity } = this.#o;
    connection.requireReady();
    const reply = await connection.request("LIST_REQUEST", {}, (f) => f.type === "LIST_RESPONSE");
    if (reply?.type !== "LIST_RESPONSE") {
      throw new CommandError("The server did not answer the list request; try again");
    }
    // The answer also went through presence.onList, which learned the names.
    return sortByName(
      reply.p.users.filter((id) => id !== identity.userId).map((id) => ({
        user_id: id,
        display_name: presence.nameOf(id),
      })),
    );
  }

  /** `/whoelsesince <seconds>`: everyone online in the window, online ones first. */
  async since(seconds: number): Promise<SeenUser[]> {
    const { connection, presence, identity, clock } = this.#o;
    if (!Number.isSafeInteger(seconds) || seconds < 0 || seconds > MAX_SINCE_SECONDS) {
      throw new CommandError(`"${seconds}" is not a number of seconds from 0 to 31622400`);
    }
    connection.requireReady();
    const reply = await connection.request(
      "PRESENCE_SINCE_REQUEST",
      { seconds },
      (f) =>
        f.type === "PRESENCE_SINCE_RESPONSE" ||
        (f.type === "ERROR" && (f.p.code === "UNKNOWN_TYPE" || f.p.code === "BAD_FRAME")),
      { claim: true },
    );
    if (reply?.type === "ERROR") {
      throw new CommandError(`The server cannot answer that: ${reply.p.detail ?? reply.p.code}`);
    }
    if (reply?.type !== "PRESENCE_SINCE_RESPONSE") {
      throw new CommandError("The server did not answer /whoelsesince; try again");
    }
    const now = clock.now();
    const users = reply.p.users
      .filter((u) => u.user_id !== identity.userId)
      .map((u): SeenUser => ({
        user_id: u.user_id,
        display_name: u.display_name ? u.display_name.slice(0, 64) : presence.nameOf(u.user_id),
        online: u.online,
        last_seen: u.last_seen,
        seconds_ago: u.online ? 0 : Math.max(0, Math.round((now - u.last_seen) / 1000)),
      }));
    return sortByName(users).sort((a, b) => Number(b.online) - Number(a.online));
  }
}

function sortByName<T extends NamedUser>(users: T[]): T[] {
  return users.sort((a, b) =>
    a.display_name.toLowerCase().localeCompare(b.display_name.toLowerCase()) ||
    (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0)
  );
}
