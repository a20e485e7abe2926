/**
 * The socp server: one WebSocket port for users and servers, the routing hub, the server
 * mesh, and the `socp server` command.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "./mod.ts";
 * console.assert(parseServerArgs(["--port", "0"], {}).config.port === 0);
 * ```
 *
 * @module
 */

export * from "./config.ts";
export * from "./hub.ts";
export * from "./identity.ts";
export * from "./log.ts";
export * from "./mesh.ts";
export * from "./rate_limit.ts";
export * from "./seen_cache.ts";
export * from "./sign_scheduler.ts";
export * from "./presence_batch.ts";
export * from "./server.ts";
export * from "./user_session.ts";
export * from "./run.ts";
export * from "./accounts.ts";
export * from "./account_pattern.ts";
export * from "./data_dir.ts";
export * from "./offline_queue.ts";
export * from "./bootstrap.ts";
export * from "./federation.ts";
export * from "./heartbeat.ts";
export * from "./peer_link.ts";
export * from "./http.ts";
export * from "./web_assets.ts";
export * from "./metrics.ts";
