/**
 * `socp mesh --servers N`: starts N socp servers on loopback as separate processes, with
 * identities and bootstrap files generated so that they form one mesh, and prints how to
 * connect clients once every server listens. Ctrl-C stops them all.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { argsErrorText, plural } from "../shared/mod.ts";
import { openSqliteStore } from "../storage/mod.ts";
import { type BootstrapEntry, renderBootstrap } from "./bootstrap.ts";
import { DataDirInUseError, lockDataDir } from "./data_dir.ts";
import { loadOrCreateIdentity } from "./identity.ts";

const MESH_USAGE = `Usage: socp mesh [options]

Starts a local mesh of servers on 127.0.0.1, each in its own process with its own data
directory and a generated bootstrap.yaml listing every server of the mesh as introducers and
as one server group (they share accounts, login failures and offline queues).

Options:
  --servers <n>     number of servers, 1 to 16 (default 3)
  --base-port <p>   first port; server i listens on base-port + i - 1 (default 8765);
                    0 picks free ports
  --dir <dir>       where the servers' data directories go (default ./mesh-data)
  -h, --help        show this help`;

const HELP_HINT = "(socp mesh --help for more)";

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

/** Why a server could not listen on 127.0.0.1:`port` now, or `undefined` when it could. */
function portProblem(port: number): string | undefined {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return undefined;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return "is already in use";
    return `cannot be used: ${(error as Error).message}`;
  }
}

/** The first base port after `from` with `count` free ports in a row, if one is found soon. */
function freeBasePort(from: number, count: number): number | undefined {
  for (let base = from, tries = 0; base + count <= 65535 && tries < 50; base += count, tries++) {
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if (ports.every((p) => portProblem(p) === undefined)) return base;
  }
  return undefined;
}

/** One server of the mesh. */
interface MeshNode {
  index: number;
  dataDir: string;
  port: number;
  id: string;
  entry: BootstrapEntry;
}

/** A running server process of the mesh. */
interface MeshChild {
  node: MeshNode;
  process: Deno.ChildProcess;
  /** Resolves with the URL of the server's `listening` line, or undefined when none came. */
  url: Promise<string | undefined>;
  /** Resolves when the process exited and its stdout ended. */
  done: Promise<Deno.CommandStatus>;
}

/**
 * Reads a server's stdout to its end: `url` resolves with the URL of its `listening` line as
 * soon as it is printed (undefined if it never is), `drained` when the output ended.
 */
function readListening(
  stdout: ReadableStream<Uint8Array>,
): { url: Promise<string | undefined>; drained: Promise<void> } {
  const url = Promise.withResolvers<string | undefined>();
  const drained = (async () => {
    let partial = "";
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stdout) {
        partial += decoder.decode(chunk, { stream: true });
        const lines = partial.split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          try {
            const event = JSON.parse(line) as { event?: unknown; url?: unknown };
            if (event.event === "listening" && typeof event.url === "string") {
              url.resolve(event.url);
            }
          } catch {
            // Not the listening line.
          }
        }
      }
    } catch {
      // The process went away mid-read.
    }
    url.resolve(undefined);
  })();
  return { url: url.promise, drained };
}

function describeExit(status: Deno.CommandStatus): string {
  return status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
}

/** Runs `socp mesh`; resolves with the exit code after Ctrl-C, or 1 when its servers fail. */
export async function runMesh(argv: string[]): Promise<number> {
  const options = {
    servers: { type: "string" },
    "base-port": { type: "string" },
    dir: { type: "string" },
    help: { type: "boolean", short: "h" },
  } as const;
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options }));
  } catch (error) {
    console.error(`socp mesh: ${argsErrorText(error, Object.keys(options))} ${HELP_HINT}`);
    return 64;
  }
  if (values.help) {
    console.log(MESH_USAGE);
    return 0;
  }
  const count = Number(values.servers ?? "3");
  const basePort = Number(values["base-port"] ?? "8765");
  if (!Number.isInteger(count) || count < 1 || count > 16) {
    console.error(`socp mesh: --servers must be 1 to 16, got "${values.servers}" ${HELP_HINT}`);
    return 64;
  }
  if (!Number.isInteger(basePort) || basePort < 0 || basePort + count - 1 > 65535) {
    console.error(
      `socp mesh: --base-port must leave room for ${plural(count, "port")}, got "${
        values["base-port"]
      }" ${HELP_HINT}`,
    );
    return 64;
  }
  const dir = resolve(values.dir ?? "mesh-data");

  // Check before starting anything, so no server is announced and then dies.
  for (let i = 0; basePort !== 0 && i < count; i++) {
    const problem = portProblem(basePort + i);
    if (problem === undefined) continue;
    const free = freeBasePort(basePort + count, count);
    console.error(
      `socp mesh: port ${basePort + i} on 127.0.0.1 ${problem}; start the mesh on other ports ` +
        `with --base-port (e.g. --base-port ${free ?? 0})`,
    );
    return 1;
  }
  const dataDirs = Array.from({ length: count }, (_, i) => join(dir, `server${i + 1}`));
  for (const dataDir of dataDirs) {
    try {
      await (await lockDataDir(dataDir))[Symbol.asyncDispose]();
    } catch (error) {
      if (error instanceof DataDirInUseError) {
        const pid = error.pid === undefined ? "" : ` (pid ${error.pid})`;
        console.error(
          `socp mesh: ${dataDir} is in use by a running socp server${pid}; stop it, or give the mesh another --dir`,
        );
        return 1;
      }
      console.error(`socp mesh: ${(error as Error).message}`);
      return 1;
    }
  }

  const nodes: MeshNode[] = [];
  for (const [i, dataDir] of dataDirs.entries()) {
    let identity;
    try {
      await using store = await openSqliteStore(join(dataDir, "socp.db"));
      ({ identity } = await loadOrCreateIdentity(dataDir, store));
    } catch (error) {
      console.error(`socp mesh: ${(error as Error).message}`);
      return 1;
    }
    const port = basePort === 0 ? freePort() : basePort + i;
    nodes.push({
      index: i + 1,
      dataDir,
      port,
      id: identity.serverId,
      entry: { host: "127.0.0.1", port, pubkey: identity.publicKeyText },
    });
  }
  // Every file lists every server, this one included (a server skips its own key): all of them
  // are introducers, so each file has as many as SOCP asks for, and all are one server group.
  const everyone = nodes.map((n) => n.entry);
  for (const node of nodes) {
    await Deno.writeTextFile(
      join(node.dataDir, "bootstrap.yaml"),
      renderBootstrap(everyone, everyone),
    );
  }

  const signalled = Promise.withResolvers<"signal">();
  const onSignal = () => signalled.resolve("signal");
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const children: MeshChild[] = nodes.map((node) => {
    const self = selfCommand([
      "server",
      "--port",
      String(node.port),
      "--data-dir",
      node.dataDir,
      "--bootstrap",
      join(node.dataDir, "bootstrap.yaml"),
    ]);
    const process = new Deno.Command(self.cmd, {
      args: self.args,
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    const { url, drained } = readListening(process.stdout);
    const done = Promise.all([process.status, drained]).then(([status]) => status);
    return { node, process, url, done };
  });
  const name = (child: MeshChild) => `server ${child.node.index} (port ${child.node.port})`;
  try {
    // Announce the mesh only when every server listens; stop it if one exits before that (a
    // server that never printed its listening line has exited, so its exit decides the race).
    const never = new Promise<never>(() => {});
    const allUp = Promise.all(children.map((c) => c.url)).then((urls) =>
      urls.every((u) => u !== undefined) ? { urls: urls as string[] } : never
    );
    const started = await Promise.race([
      signalled.promise,
      allUp,
      ...children.map((child) => child.done.then((status) => ({ child, status }))),
    ]);
    if (started === "signal") return 0;
    if ("child" in started) {
      console.error(
        `socp mesh: ${name(started.child)} ${
          describeExit(started.status)
        } while the mesh was starting; stopping the mesh`,
      );
      return 1;
    }
    for (const [i, child] of children.entries()) {
      const { index, id, dataDir } = child.node;
      console.log(`server ${index}: ${started.urls[i]}  id ${id}  data ${dataDir}`);
    }
    const first = started.urls[0];
    const last = started.urls[started.urls.length - 1];
    console.log(
      `\nConnect clients, e.g.:\n  socp client alice.json --server ${first}\n` +
        `  socp client bob.json --server ${last}\n\nCtrl-C stops the mesh.`,
    );

    // Keep running while any server does; say when one stops, fail when none is left.
    const running = new Set(children);
    while (running.size > 0) {
      const event = await Promise.race([
        signalled.promise,
        ...[...running].map((child) => child.done.then((status) => ({ child, status }))),
      ]);
      if (event === "signal") return 0;
      running.delete(event.child);
      const left = running.size > 0
        ? `${plural(running.size, "server")} still running`
        : "no server is left; stopping the mesh";
      console.error(`socp mesh: ${name(event.child)} ${describeExit(event.status)}; ${left}`);
    }
    return 1;
  } finally {
    for (const child of children) {
      try {
        child.process.kill("SIGTERM");
      } catch {
        // Already exited.
      }
    }
    await Promise.all(children.map((c) => c.done));
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
