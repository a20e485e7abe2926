/**
 * Integration test of `socp mesh`: it starts N real servers as child processes that link into
 * one mesh, users on different servers chat through it, and SIGTERM stops it with every child.
 * The data directories are seeded with fixture server keys, which the command reuses, so no
 * RSA key is generated.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadBootstrap } from "../server/mod.ts";
import { fixturePem } from "./fixtures/keys.ts";
import {
  advertOf,
  assertDm,
  connectUser,
  fixturePubkey,
  linkedPeers,
  runMain,
  shortId,
  spawnMain,
  startServer,
  withTempDir,
  withTimeout,
} from "./support/mod.ts";

/** One `server N: ws://127.0.0.1:PORT  id ID  data DIR` line of `socp mesh`. */
interface MeshLine {
  index: number;
  url: string;
  port: number;
  id: string;
}

const SERVER_LINE = /^server (\d+): (ws:\/\/127\.0\.0\.1:(\d+))\s+id ([0-9a-f-]{36})\s/;

function meshLines(stdout: readonly string[]): MeshLine[] {
  return stdout.flatMap((line) => {
    const m = SERVER_LINE.exec(line);
    return m ? [{ index: Number(m[1]), url: m[2]!, port: Number(m[3]), id: m[4]! }] : [];
  });
}

/** Writes fixture server keys into `<dir>/server1` … `<dir>/server<count>`. */
async function seedKeys(dir: string, count: number): Promise<void> {
  for (let i = 1; i <= count; i++) {
    await Deno.mkdir(join(dir, `server${i}`), { recursive: true });
    await Deno.writeTextFile(
      join(dir, `server${i}`, "server_key.pem"),
      await fixturePem(`server${i - 1}`),
      { mode: 0o600 },
    );
  }
}

/** The stderr lines a command printed itself (not the `rsa backend:` notice of a server). */
function ownLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line !== "" && !line.startsWith("rsa backend:"));
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
async function listening(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return false;
    throw error;
  }
}

Deno.test("socp mesh runs three linked servers and stops them all on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_test_mesh_cmd_" });
  try {
    await seedKeys(dir, 3);
    await using mesh = spawnMain(["mesh", "--servers", "3", "--base-port", "0", "--dir", dir]);
    await mesh.waitForOutput(
      ({ stdout }) => stdout.some((line) => /Ctrl-C stops the mesh/.test(line)),
      "the mesh to print its servers",
    );
    const servers = meshLines(mesh.stdoutLines());
    assert.deepEqual(servers.map((s) => s.index), [1, 2, 3]);
    assert.equal(new Set(servers.map((s) => s.port)).size, 3);
    for (const s of servers) assert.notEqual(s.port, 0);

    // The servers log to the mesh's stderr: await each one listening and linked to the others.
    await mesh.waitForOutput(({ stderr }) =>
      servers.every((s) => {
        const own = stderr.filter((line) => line.includes(`[server ${shortId(s.id)}]`));
        return own.some((line) => line.includes(`listening on ${s.url}`)) &&
          linkedPeers(own).size === 2;
      }), "every server to listen and link to the two others");

    // Each bootstrap file lists all three servers (itself included) as introducers and as the
    // server group, so no server warns that it has fewer than SOCP asks for.
    for (const s of servers) {
      const file = await loadBootstrap(join(dir, `server${s.index}`, "bootstrap.yaml"));
      const ports = (entries: readonly { port?: number }[] | undefined) =>
        (entries ?? []).map((e) => e.port).sort();
      const all = servers.map((x) => x.port).sort();
      assert.deepEqual(ports(file?.introducers), all);
      assert.deepEqual(ports(file?.group), all);
    }
    const warnings = mesh.stderrLines().filter((line) => /at least 3/.test(line));
    assert.deepEqual(warnings, [], "no server warns about its bootstrap list");

    const [first, , third] = servers as [MeshLine, MeshLine, MeshLine];
    {
      await using alice = await connectUser(first.url, "user0", {
        serverPub: await fixturePubkey("server0"),
        displayName: "alice",
      });
      await using carol = await connectUser(third.url, "user2", {
        serverPub: await fixturePubkey("server2"),
        displayName: "carol",
      });
      assert.equal(alice.serverId, first.id);
      assert.equal(carol.serverId, third.id);
      await alice.next(advertOf(carol.userId, third.id));
      await carol.next(advertOf(alice.userId, first.id));
      await assertDm(alice, carol, "hello from server 1");
      await assertDm(carol, alice, "hello from server 3");
    }

    const status = await mesh.stop("SIGTERM");
    assert.equal(status.code, 0, mesh.stderrLines().slice(-20).join("\n"));
    for (const s of servers) {
      assert.equal(await listening(s.port), false, `server ${s.index} still listens on ${s.port}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("socp mesh checks its ports first: a taken one fails with one line, starting nothing", async () => {
  await withTempDir("socp_test_mesh_port_", async (dir) => {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = taken.addr.port;
      const out = await runMain([
        "mesh",
        "--servers",
        "3",
        "--base-port",
        String(port),
        "--dir",
        dir,
      ]);
      assert.equal(out.code, 1, out.stderr);
      assert.equal(out.stdout, "");
      const lines = ownLines(out.stderr);
      assert.equal(lines.length, 1, out.stderr);
      assert.match(
        lines[0]!,
        new RegExp(
          `^socp mesh: port ${port} on 127\\.0\\.0\\.1 is already in use; .*--base-port \\d+`,
        ),
      );
      // Nothing was started or created.
      await assert.rejects(() => Deno.stat(join(dir, "server1")), Deno.errors.NotFound);
    } finally {
      taken.close();
    }
  });
});

Deno.test("socp mesh announces no server and exits 1 when one fails to start", async () => {
  await withTempDir("socp_test_mesh_start_", async (dir) => {
    await seedKeys(dir, 2);
    // A bad setting in the environment makes every server exit before it listens.
    const out = await runMain(["mesh", "--servers", "2", "--base-port", "0", "--dir", dir], {
      env: { SOCP_LOG_LEVEL: "loud" },
    });
    assert.equal(out.code, 1, out.stderr);
    assert.doesNotMatch(out.stdout, /server \d:|Connect clients/);
    const own = ownLines(out.stderr).filter((line) => line.startsWith("socp mesh:"));
    assert.equal(own.length, 1, out.stderr);
    assert.match(
      own[0]!,
      /^socp mesh: server [12] \(port \d+\) exited with code 64 while the mesh was starting; stopping the mesh$/,
    );
  });
});

Deno.test("socp mesh says when its servers die and exits 1 once none is left", async () => {
  await withTempDir("socp_test_mesh_die_", async (dir) => {
    await seedKeys(dir, 2);
    await using mesh = spawnMain(["mesh", "--servers", "2", "--base-port", "0", "--dir", dir]);
    await mesh.waitForOutput(
      ({ stdout }) => stdout.some((line) => /Ctrl-C stops the mesh/.test(line)),
      "the mesh to print its servers",
    );
    const ports = meshLines(mesh.stdoutLines()).map((s) => s.port);
    for (const [i, left] of [[1, "1 server still running"], [2, "no server is left"]] as const) {
      // Each server's data-directory lock file holds its pid.
      const pid = Number((await Deno.readTextFile(join(dir, `server${i}`, "lock"))).trim());
      Deno.kill(pid, "SIGKILL");
      await mesh.waitForOutput(
        ({ stderr }) => stderr.some((line) => line.startsWith(`socp mesh: server ${i} `)),
        `the mesh to report that server ${i} died`,
      );
      const report = mesh.stderrLines().find((line) => line.startsWith(`socp mesh: server ${i} `));
      assert.equal(
        report,
        `socp mesh: server ${i} (port ${ports[i - 1]}) was killed by SIGKILL; ${left}${
          i === 2 ? "; stopping the mesh" : ""
        }`,
      );
    }
    const status = await withTimeout(mesh.status, 15_000, "the mesh to exit");
    assert.equal(status.code, 1);
  });
});

Deno.test("socp mesh refuses a data directory a running server holds", async () => {
  await withTempDir("socp_test_mesh_lock_", async (dir) => {
    await using server = await startServer({ dataDir: join(dir, "server1") });
    const out = await runMain(["mesh", "--servers", "2", "--base-port", "0", "--dir", dir]);
    assert.equal(out.code, 1, out.stderr);
    assert.equal(out.stdout, "");
    assert.deepEqual(ownLines(out.stderr), [
      `socp mesh: ${
        join(dir, "server1")
      } is in use by a running socp server (pid ${server.process.pid}); stop it, or give the mesh another --dir`,
    ]);
  });
});

Deno.test("socp mesh answers a mistyped flag with one line and the help hint", async () => {
  const out = await runMain(["mesh", "--server", "3"]);
  assert.equal(out.code, 64);
  assert.equal(out.stdout, "");
  assert.deepEqual(ownLines(out.stderr), [
    'socp mesh: Unknown option "--server"; did you mean "--servers"? (socp mesh --help for more)',
  ]);
});
