/**
 * `socp mesh --servers N`: starts N socp servers on loopback as separate processes, with
 * identities and bootstrap files generated so that they form one mesh, and prints how to
 * connect clients. Ctrl-C stops them all.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { openSqliteStore } from "../storage/mod.ts";
import { type BootstrapEntry, renderBootstrap } from "./bootstrap.ts";
import { loadOrCreateIdentity } from "./identity.ts";

const MESH_USAGE = `Usage: socp mesh [options]

Starts a local mesh of servers on 127.0.0.1, each in its own process with its own data
directory and a generated bootstrap.yaml listing the others as introducers.

Options:
  --servers <n>     number of servers, 1 to 16 (default 3)
  --base-port <p>   first port; server i listens on base-port + i (default 8765);
                    0 picks free ports
  --dir <dir>       where the servers' data directories go (default ./mesh-data)
  -h, --help        show this help`;

/** The command line that runs `socp <args>` with this same program. */
export function selfCommand(args: string[]): { cmd: string; args: string[] } {
  const main = Deno.mainModule;
  // A `deno compile`d socp is its own executable; otherwise run main.ts with this Deno.
  const standalone = (Deno.build as { standalone?: boolean }).standalone === true;
  if (!standalone && main.startsWith("file:") && main.endsWith(".ts")) {
    return { cmd: Deno.execPath(), args: ["run", "-A", new URL(main).pathname, ...args] };
  }
  return { cmd: Deno.execPath(), args };
}

/** A port that is free right now (the OS picks it). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Runs `socp mesh`; resolves with the exit code after Ctrl-C. */
export async function runMesh(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        servers: { type: "string" },
        "base-port": { type: "string" },
        dir: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`socp mesh: ${(error as Error).message}\n\n${MESH_USAGE}`);
    return 64;
  }
  if (values.help) {
    console.log(MESH_USAGE);
    return 0;
  }
  const count = Number(values.servers ?? "3");
  const basePort = Number(values["base-port"] ?? "8765");
  if (!Number.isInteger(count) || count < 1 || count > 16) {
    console.error(`socp mesh: --servers must be 1 to 16, got "${values.servers}"`);
    return 64;
  }
  if (!Number.isInteger(basePort) || basePort < 0 || basePort + count > 65535) {
    console.error(
      `socp mesh: --base-port must leave room for ${count} ports, got "${values["base-port"]}"`,
    );
    return 64;
  }
  const dir = resolve(values.dir ?? "mesh-data");
  const nodes: { dataDir: string; port: number; entry: BootstrapEntry; id: string }[] = [];
  for (let i = 0; i < count; i++) {
    const dataDir = join(dir, `server${i + 1}`);
    await Deno.mkdir(dataDir, { recursive: true });
    await using store = await openSqliteStore(join(dataDir, "socp.db"));
    const { identity } = await loadOrCreateIdentity(dataDir, store);
    const port = basePort === 0 ? freePort() : basePort + i;
    nodes.push({
      dataDir,
      port,
      id: identity.serverId,
      entry: { host: "127.0.0.1", port, pubkey: identity.publicKeyText },
    });
  }
  const children: Deno.ChildProcess[] = [];
  for (const node of nodes) {
    const bootstrap = join(node.dataDir, "bootstrap.yaml");
    await Deno.writeTextFile(
      bootstrap,
      renderBootstrap(nodes.filter((n) => n !== node).map((n) => n.entry)),
    );
    const self = selfCommand([
      "server",
      "--port",
      String(node.port),
      "--data-dir",
      node.dataDir,
      "--bootstrap",
      bootstrap,
    ]);
    children.push(
      new Deno.Command(self.cmd, {
        args: self.args,
        stdout: "null",
        stderr: "inherit",
        stdin: "null",
      }).spawn(),
    );
    console.log(
      `server ${
        nodes.indexOf(node) + 1
      }: ws://127.0.0.1:${node.port}  id ${node.id}  data ${node.dataDir}`,
    );
  }
  console.log(
    `\nConnect clients, e.g.:\n  socp client alice.json --server ws://127.0.0.1:${
      nodes[0]!.port
    }\n  socp client bob.json --server ws://127.0.0.1:${
      nodes[nodes.length - 1]!.port
    }\n\nCtrl-C stops the mesh.`,
  );
  const { promise, resolve: stop } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const exited = Promise.all(children.map((c) => c.status));
  await Promise.race([promise, exited]);
  for (const child of children) {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
  }
  await exited;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  return 0;
}
