/**
 * The `socp server` command.
 *
 * @module
 */

import { ConfigError, parseServerArgs, SERVER_USAGE } from "./config.ts";
import { SocpServer } from "./server.ts";
import { openSqliteStore } from "../storage/mod.ts";
import { loadOrCreateIdentity } from "./identity.ts";
import { join } from "node:path";

/**
 * Runs `socp server` with `args`; resolves with the exit code once the server stops
 * (SIGINT/SIGTERM) or fails to start.
 */
export async function runServer(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseServerArgs(args, Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`socp server: ${error.message}\n\n${SERVER_USAGE}`);
    return 64;
  }
  if (parsed.help) {
    console.log(SERVER_USAGE);
    return 0;
  }
  const { config } = parsed;
  if (parsed.printIdentity) {
    await using store = await openSqliteStore(join(config.dataDir, "socp.db"));
    const { identity } = await loadOrCreateIdentity(config.dataDir, store);
    console.log(JSON.stringify({ server_id: identity.serverId, pubkey: identity.publicKeyText }));
    return 0;
  }
  let server: SocpServer;
  try {
    const { createMesh } = await import("./federation.ts");
    server = await SocpServer.start({ config, mesh: createMesh });
  } catch (error) {
    const e = error as Error & { code?: string };
    if (error instanceof Deno.errors.AddrInUse) {
      console.error(
        `socp server: port ${config.port} on ${config.host} is already in use; pick another with --port`,
      );
    } else if (error instanceof ConfigError) {
      console.error(`socp server: ${error.message}`);
    } else {
      console.error(`socp server: failed to start: ${e.message}`);
    }
    return 1;
  }
  // One machine-readable line on stdout for scripts and tests.
  console.log(
    JSON.stringify({
      event: "listening",
      url: server.url,
      host: server.addr.hostname,
      port: server.addr.port,
      server_id: server.identity.serverId,
      pubkey: server.identity.publicKeyText,
      data_dir: config.dataDir,
    }),
  );
  server.log.info(`socp server ${server.identity.serverId} listening on ${server.url}`);
  const { promise, resolve } = Promise.withResolvers<void>();
  const stop = () => resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await promise;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  await server.close();
  return 0;
}
