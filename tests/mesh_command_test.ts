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
import { fixturePem } from "./fixtures/keys.ts";
import {
  advertOf,
  assertDm,
  connectUser,
  fixturePubkey,
  linkedPeers,
  shortId,
  spawnMain,
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
    for (let i = 1; i <= 3; i++) {
      await Deno.mkdir(join(dir, `server${i}`));
      await Deno.writeTextFile(
        join(dir, `server${i}`, "server_key.pem"),
        await fixturePem(`server${i - 1}`),
        { mode: 0o600 },
      );
    }
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
