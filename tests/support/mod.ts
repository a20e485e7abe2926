/**
 * Helpers for socp's multi-process integration tests: real `socp server` and `socp client`
 * processes on 127.0.0.1 with OS-chosen ports, as disposable nodes, and scripted protocol users
 * (honest or hostile) in the test process.
 *
 * @example
 * ```ts ignore
 * import { connectUser, startServer } from "./support/mod.ts";
 *
 * await using server = await startServer();
 * await using alice = await connectUser(server.url, "user0", { displayName: "alice" });
 * await using bob = await connectUser(server.url, "user1", { displayName: "bob" });
 * await alice.dm(bob, "hi");
 * console.assert((await bob.nextDm(alice)).text === "hi");
 * ```
 *
 * @module
 */

export * from "./accounts.ts";
export * from "./main_process.ts";
export * from "./mesh_checks.ts";
export * from "./raw_server.ts";
export * from "./raw_user.ts";
export * from "./start_client.ts";
export * from "./start_mesh.ts";
export * from "./start_server.ts";
export * from "./temp_dir.ts";
export * from "./timeout.ts";
