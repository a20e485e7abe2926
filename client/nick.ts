/**
 * `/nick`: changing the display name while connected. The client sends
 * `USER_UPDATE {display_name}`; its server answers `ACK USER_UPDATE_OK` and advertises the user
 * again (`USER_ADVERTISE` to the mesh and its local users), so everyone online sees the new name
 * at once (docs/protocol.md). A server without USER_UPDATE answers `UNKNOWN_TYPE`: the name then
 * applies from the next connection (its USER_HELLO carries it).
 *
 * @module
 */

import type { Connection, Identity } from "./connection.ts";
import { CommandError, ServerError } from "./errors.ts";

/** What happened to a new display name. */
export type NickOutcome = "everywhere" | "next_connection";

/** ERROR codes that answer USER_UPDATE. */
const ANSWERS: ReadonlySet<string> = new Set([
  "UNKNOWN_TYPE",
  "BAD_REQUEST",
  "BAD_FRAME",
  "RATE_LIMIT",
]);

/**
 * Asks the server to advertise `name` for the connected user, and uses it for this session's
 * next USER_HELLO either way. Throws {@linkcode ServerError} when the server refuses the name.
 *
 * @example
 * ```ts ignore
 * const outcome = await updateDisplayName(connection, identity, "Robert");
 * ```
 */
export async function updateDisplayName(
  connection: Connection,
  identity: Identity,
  name: string,
): Promise<NickOutcome> {
  connection.requireReady();
  const reply = await connection.request(
    "USER_UPDATE",
    { display_name: name },
    (f) =>
      (f.type === "ACK" && f.p.msg_ref === "USER_UPDATE_OK") ||
      (f.type === "ERROR" && ANSWERS.has(f.p.code)),
    { claim: true },
  );
  if (reply?.type === "ERROR" && reply.p.code !== "UNKNOWN_TYPE") {
    throw new ServerError(reply.p.code, reply.p.detail || "The server refused the name");
  }
  if (reply === undefined && !connection.ready) {
    throw new CommandError("The connection dropped before the server answered; try again");
  }
  identity.displayName = name;
  return reply?.type === "ACK" ? "everywhere" : "next_connection";
}
