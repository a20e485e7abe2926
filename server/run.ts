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
import { type DataDirLock, lockDataDir, prepareDataDir } from "./data_dir.ts";

/**
 * Runs `socp server` with `args`; resolves with the exit code once the server stops
 * (SIGINT/SIGTERM) or fails to start.
 */
export async function runServer(
  args: string[],
  options: { rsaBackend?: string } = {},
): Promise<number> {
  let parsed;
  try {
    parsed = parseServerArgs(args, Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`socp server: ${error.message} (socp server --help for more)`);
    return 64;
  }
  if (parsed.help) {
    console.log(SERVER_USAGE);
    return 0;
  }
  const { config } = parsed;
  if (parsed.printIdentity) {
    try {
      await prepareDataDir(config.dataDir);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      console.error(`socp server: ${error.message}`);
      return 1;
    }
    await using store = await openSqliteStore(join(config.dataDir, "socp.db"));
    const { identity } = await loadOrCreateIdentity(config.dataDir, store);
    console.log(JSON.stringify({ server_id: identity.serverId, pubkey: identity.publicKeyText }));
    return 0;
  }
  // One server per data directory: a second one would share its id and database.
  let lock: DataDirLock;
  try {
    lock = await lockDataDir(config.dataDir);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`socp server: ${error.message}`);
    return 1;
  }
  await using _lock = lock;
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
  // One machine-readable line on stdout for scripts and tests (with the full key); the log
  // line on stderr stays short.
  const metrics = server.metricsAddr;
  const metricsUrl = metrics && `http://${hostPort(metrics.hostname, metrics.port)}/metrics`;
  console.log(
    JSON.stringify({
      event: "listening",
      url: server.url,
      host: server.addr.hostname,
      port: server.addr.port,
      server_id: server.identity.serverId,
      pubkey: server.identity.publicKeyText,
      data_dir: config.dataDir,
      ...(metricsUrl ? { metrics_url: metricsUrl } : {}),
    }),
  );
  server.log.info(
    `listening on ${server.url}${metricsUrl ? `, metrics on ${metricsUrl}` : ""}`,
    { event: "listening", url: server.url, ...(metricsUrl ? { metrics_url: metricsUrl } : {}) },
  );
  if (options.rsaBackend) {
    server.log.info(`rsa backend: ${options.rsaBackend}`, { event: "rsa_backend" });
  }
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

/** `host:port`, with an IPv6 host in brackets. */
function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
