/**
 * A mesh of real `socp server` processes for federation tests: {@linkcode startMesh} starts the
 * first node standalone (no bootstrap file) and every later node with a `bootstrap.yaml` in its
 * data directory that lists the nodes started before it (their port and fixture key), so each
 * joins through the first and links to the rest. Nodes restart on the same port
 * (`restart({samePort: true})`), so the bootstrap files and the peer addresses the others stored
 * stay valid.
 *
 * @module
 */

import { join } from "node:path";
import { encodePublicKey } from "../../shared/mod.ts";
import { type FixtureKeyName, fixtureKeyPair } from "../fixtures/keys.ts";
import { type ServerNode, startServer } from "./start_server.ts";
import { TIMEOUTS } from "./timeout.ts";

/** Short heartbeat timings (flags) for tests of link health: beat every 300 ms, dead after 1.5 s. */
export const FAST_HEARTBEAT_ARGS: readonly string[] = [
  "--heartbeat-ms",
  "300",
  "--dead-after-ms",
  "1500",
];

/** One entry of a bootstrap file. */
export interface BootstrapLine {
  /** Host to dial. */
  host: string;
  /** Port to dial. */
  port: number;
  /** Pinned key: base64url SPKI. */
  pubkey: string;
}

/** The base64url SPKI of a fixture key (what a server with that key presents). */
export async function fixturePubkey(name: FixtureKeyName): Promise<string> {
  return encodePublicKey((await fixtureKeyPair(name)).publicKey);
}

/**
 * Renders `bootstrap_servers:` YAML for `entries` (the format of server/bootstrap.ts), with a
 * `server_group:` list of keys when `group` is given.
 */
export function bootstrapYaml(
  entries: readonly BootstrapLine[],
  group: readonly string[] = [],
): string {
  const lines = [entries.length > 0 ? "bootstrap_servers:" : "bootstrap_servers: []"];
  for (const e of entries) {
    lines.push(`  - host: "${e.host}"`, `    port: ${e.port}`, `    pubkey: "${e.pubkey}"`);
  }
  if (group.length > 0) lines.push("server_group:");
  for (const key of group) lines.push(`  - pubkey: "${key}"`);
  return lines.join("\n") + "\n";
}

/** The bootstrap entry that points at a running node. */
export function entryOf(node: ServerNode): BootstrapLine {
  return { host: "127.0.0.1", port: node.port, pubkey: node.pubkey };
}

/** Options for {@linkcode startMesh} and {@linkcode TestMesh.join}. */
export interface StartMeshOptions {
  /** Fixture server keys, one per node (default `server0`, `server1`, …). */
  keys?: FixtureKeyName[];
  /** Extra `socp server` flags for every node (e.g. {@linkcode FAST_HEARTBEAT_ARGS}). */
  args?: readonly string[];
  /** Extra environment variables for every node. */
  env?: Record<string, string>;
  /** Wait until every node is linked to every other (default true). */
  waitLinked?: boolean;
  /**
   * Make the nodes one server group (`server_group:` with every key of `keys`), so they share
   * account records and login failures (default true); false: an open federation only.
   */
  group?: boolean;
}

/** Options for one node started by {@linkcode startMeshNode}. */
export interface MeshNodeOptions {
  /** Where the data directory goes (a new subdirectory `<name>` is made). */
  root: string;
  /** Directory name under `root`. */
  name: string;
  /** Fixture key of the node. */
  key: FixtureKeyName;
  /** Bootstrap entries written to `<dataDir>/bootstrap.yaml`; none: no file (standalone). */
  bootstrap?: readonly BootstrapLine[];
  /** Keys of the server group (written to the bootstrap file, which is then always made). */
  group?: readonly string[];
  /** Extra flags. */
  args?: readonly string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/**
 * Starts one server whose data directory (under `root`, kept for restarts, removed with
 * `root`) holds its fixture key and, when given, a bootstrap file.
 */
export async function startMeshNode(options: MeshNodeOptions): Promise<ServerNode> {
  const dataDir = join(options.root, options.name);
  await Deno.mkdir(dataDir, { recursive: true });
  if (options.bootstrap !== undefined || (options.group?.length ?? 0) > 0) {
    await Deno.writeTextFile(
      join(dataDir, "bootstrap.yaml"),
      bootstrapYaml(options.bootstrap ?? [], options.group),
    );
  }
  return await startServer({
    dataDir,
    serverKey: options.key,
    args: [...(options.args ?? [])],
    ...(options.env !== undefined ? { env: options.env } : {}),
  });
}

/** The short form of a server id that the server logs print (first 8 characters). */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

/**
 * The servers `node` currently has a live link to, as short ids, read from its log lines
 * ("linked to server X" / "link to server X closed").
 */
export function linkedPeers(lines: readonly string[]): Set<string> {
  const peers = new Set<string>();
  for (const line of lines) {
    const up = /linked to server ([0-9a-f]{8}) \(/.exec(line);
    if (up) peers.add(up[1]!);
    const down = /link to server ([0-9a-f]{8}) closed/.exec(line);
    if (down) peers.delete(down[1]!);
  }
  return peers;
}

/** Resolves once `node`'s log says it is linked to every server in `others`. */
export async function waitLinked(
  node: ServerNode,
  others: readonly ServerNode[],
  timeoutMs: number = TIMEOUTS.meshLinked,
): Promise<void> {
  const want = others.filter((o) => o !== node).map((o) => shortId(o.serverId));
  await node.waitForLogs(
    (lines) => {
      const peers = linkedPeers(lines);
      return want.every((id) => peers.has(id));
    },
    `server ${shortId(node.serverId)} to be linked to ${want.join(", ")}`,
    timeoutMs,
  );
}

/** A running mesh; disposing it stops every node and removes their data directories. */
export interface TestMesh extends AsyncDisposable {
  /** The nodes, in start order. */
  readonly nodes: ServerNode[];
  /** The directory holding every node's data directory. */
  readonly root: string;
  /**
   * Starts one more node (key `key`) whose bootstrap file lists every current node, adds it to
   * `nodes` and (by default) waits until the whole mesh is linked.
   */
  join(key: FixtureKeyName, options?: { waitLinked?: boolean }): Promise<ServerNode>;
  /** Waits until every node (or those given) is linked to every other node. */
  waitFullyLinked(nodes?: readonly ServerNode[], timeoutMs?: number): Promise<void>;
}

/**
 * Starts `n` servers on 127.0.0.1 that form one mesh (see the module doc) and, by default,
 * waits until each is linked to all the others.
 *
 * @example
 * ```ts ignore
 * await using mesh = await startMesh(3, { args: FAST_HEARTBEAT_ARGS });
 * const [a, b, c] = mesh.nodes;
 * ```
 */
export async function startMesh(n: number, options: StartMeshOptions = {}): Promise<TestMesh> {
  const keys = options.keys ?? Array.from({ length: n }, (_, i) => `server${i}` as FixtureKeyName);
  if (keys.length !== n) {
    throw new RangeError(`startMesh(${n}) needs ${n} keys, got ${keys.length}`);
  }
  const root = await Deno.makeTempDir({ prefix: "socp_test_mesh_" });
  const nodes: ServerNode[] = [];
  const group = (options.group ?? true) ? await Promise.all(keys.map(fixturePubkey)) : [];
  let disposed = false;
  const mesh: TestMesh = {
    nodes,
    root,
    async join(key, joinOptions = {}): Promise<ServerNode> {
      const node = await startMeshNode({
        root,
        name: `node${nodes.length}_${key}`,
        key,
        ...(nodes.length > 0 ? { bootstrap: nodes.map(entryOf) } : {}),
        // A node whose key is not one of the group's joins the open federation only.
        ...(group.includes(await fixturePubkey(key)) ? { group } : {}),
        ...(options.args !== undefined ? { args: options.args } : {}),
        ...(options.env !== undefined ? { env: options.env } : {}),
      });
      nodes.push(node);
      if (joinOptions.waitLinked ?? true) await mesh.waitFullyLinked();
      return node;
    },
    async waitFullyLinked(which = nodes, timeoutMs = TIMEOUTS.meshLinked): Promise<void> {
      await Promise.all(which.map((node) => waitLinked(node, which, timeoutMs)));
    },
    async [Symbol.asyncDispose](): Promise<void> {
      if (disposed) return;
      disposed = true;
      await Promise.allSettled(nodes.map((node) => node[Symbol.asyncDispose]()));
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
  try {
    for (const key of keys) await mesh.join(key, { waitLinked: false });
    if (options.waitLinked ?? true) await mesh.waitFullyLinked();
  } catch (error) {
    await mesh[Symbol.asyncDispose]();
    throw error;
  }
  return mesh;
}
