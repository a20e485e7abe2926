/**
 * Persistence of a socp server: users and their account blobs, groups and
 * their members, known peers, settings and the offline queue, behind the
 * {@linkcode Store} interface. The embedded default backend is SQLite
 * ({@linkcode openSqliteStore}); every write is durable when its promise
 * resolves.
 *
 * @example Keep a setting and queue a frame for an offline user
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSqliteStore } from "./mod.ts";
 *
 * await using store = await openSqliteStore(":memory:");
 * await store.setSetting("server_id", "a3f6c2f0-1f0e-4a5b-9c1d-6e7f8a9b0c1d");
 * assert.equal(await store.getSetting("server_id"), "a3f6c2f0-1f0e-4a5b-9c1d-6e7f8a9b0c1d");
 *
 * const seq = await store.enqueue({ recipient: "bob", sender: "alice", frame: "{}", queued_at: 1 });
 * assert.deepEqual(await store.listQueue("bob"), [
 *   { seq, recipient: "bob", sender: "alice", frame: "{}", queued_at: 1, entry_id: null },
 * ]);
 * ```
 *
 * @module
 */

export * from "./store.ts";
export * from "./sqlite_store.ts";
export * from "./file_mode.ts";
