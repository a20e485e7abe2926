/**
 * Checks that federation tests share: presence frames about one user, the server's user list,
 * a DM round trip between two scripted users, "settling" a user's inbox so that the absence
 * of a frame can be asserted without sleeping, and a refused connection.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Envelope } from "../../shared/mod.ts";
import { FRAME_TIMEOUT_MS, type RawConnection, type RawUser } from "./raw_user.ts";

/** Matches a USER_ADVERTISE about `userId` (optionally hosted on `serverId`). */
export function advertOf(userId: string, serverId?: string): (f: Envelope) => boolean {
  return (f) =>
    f.type === "USER_ADVERTISE" && f.payload["user_id"] === userId &&
    (serverId === undefined || f.payload["server_id"] === serverId);
}

/** Matches a USER_REMOVE about `userId`. */
export function removeOf(userId: string): (f: Envelope) => boolean {
  return (f) => f.type === "USER_REMOVE" && f.payload["user_id"] === userId;
}

/** Asks `user`'s server for LIST_RESPONSE and returns its `online_users`. */
export async function listUsers(user: RawUser): Promise<string[]> {
  await user.sendFrame("LIST_REQUEST", user.serverId, {});
  const list = await user.next("LIST_RESPONSE");
  return list.payload["online_users"] as string[];
}

/** Sorted copy. */
export function sorted(ids: readonly string[]): string[] {
  return [...ids].sort();
}

/**
 * Sends a DM from `from` to `to` and checks it arrives decrypted, with a content_sig that
 * verifies over the original ts, and with the original ts kept (envelope, `orig_ts`, `msg_ts`).
 */
export async function assertDm(
  from: RawUser,
  to: RawUser,
  text: string,
  timeoutMs: number = FRAME_TIMEOUT_MS,
): Promise<Envelope> {
  const sent = await from.dm(to, text);
  const dm = await to.nextDm(from, timeoutMs);
  assert.equal(dm.text, text);
  const { frame } = dm;
  assert.equal(frame.to, to.userId);
  assert.equal(frame.from, to.serverId, "USER_DELIVER comes from the recipient's server");
  assert.equal(frame.ts, sent.ts, "USER_DELIVER keeps the sender's ts");
  assert.equal(frame.payload["orig_ts"], sent.ts);
  assert.equal(frame.payload["msg_ts"], sent.ts);
  assert.equal(frame.payload["sender"], from.userId);
  assert.equal(frame.payload["sender_pub"], from.pubkey);
  assert.equal(frame.payload["ciphertext"], sent.payload["ciphertext"]);
  assert.equal(frame.payload["content_sig"], sent.payload["content_sig"]);
  return frame;
}

/** DMs both ways between every pair of `users` (labelled for failures). */
export async function assertAllChat(users: readonly RawUser[], label: string): Promise<void> {
  for (const a of users) {
    for (const b of users) {
      if (a !== b) await assertDm(a, b, `${a.displayName} -> ${b.displayName} (${label})`);
    }
  }
}

/**
 * Makes every frame that could still be on its way to `user` from `senders`' servers arrive:
 * each sender DMs `user` a marker, and `user` awaits them all. Frames of one server link are
 * handled in order, so anything sent to `user` before a marker left its server ahead of it.
 */
export async function settle(user: RawUser, senders: readonly RawUser[]): Promise<void> {
  const marker = `settle ${crypto.randomUUID()}`;
  for (const sender of senders) await sender.dm(user, marker);
  for (const sender of senders) {
    const dm = await user.nextDm(sender);
    assert.equal(dm.text, marker);
  }
}

/** Expects the server to answer the first frame with ERROR `code` and to close with 1008. */
export async function expectRefusal(conn: RawConnection, code: string): Promise<Envelope> {
  const error = await conn.nextError();
  assert.equal(error.payload["code"], code, JSON.stringify(error.payload));
  const closed = await conn.closedByServer();
  assert.equal(closed.code, 1008);
  return error;
}
