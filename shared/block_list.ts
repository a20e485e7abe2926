/**
 * Block lists signed by their owner. A user's block list (who may not message them or see
 * their presence) is a statement signed by the user's own key, like an account record
 * (account_record.ts), so the servers that enforce and replicate it cannot change it: the
 * canonical JSON of `{kind:"socp-blocks-v1", user_id, blocked (sorted, unique), seq}`, signed
 * with RSASSA-PSS-SHA256. A higher `seq` replaces a lower one.
 *
 * @module
 */

import type { JsonObject } from "./envelope.ts";
import type { PrivateKey, PublicKey } from "./rsa.ts";
import { signStatement, verifyStatement } from "./transport_sig.ts";

/** One version of a user's block list. */
export interface BlockList {
  /** The owner. */
  user_id: string;
  /** Blocked user ids. */
  blocked: string[];
  /** Strictly increasing per owner (milliseconds, or one more than the last). */
  seq: number;
}

/** Most entries in one block list. */
export const MAX_BLOCKED = 1000;

/**
 * The list in its signed form: ids sorted and unique.
 *
 * @example
 * ```ts
 * import { normalizeBlocked } from "./block_list.ts";
 * console.assert(normalizeBlocked(["b", "a", "b"]).join() === "a,b");
 * ```
 */
export function normalizeBlocked(ids: readonly string[]): string[] {
  return [...new Set(ids)].sort();
}

function statement(list: BlockList): JsonObject {
  return {
    kind: "socp-blocks-v1",
    user_id: list.user_id,
    blocked: normalizeBlocked(list.blocked),
    seq: list.seq,
  };
}

/** Signs a block list with its owner's key; returns base64url. */
export function signBlockList(key: PrivateKey, list: BlockList): Promise<string> {
  return signStatement(key, statement(list));
}

/** True when `sig` is the owner's signature over `list`. */
export function verifyBlockList(key: PublicKey, list: BlockList, sig: string): Promise<boolean> {
  return verifyStatement(key, statement(list), sig);
}
