/**
 * Servers that start at nearly the same moment still end in a full mesh: a server keeps
 * dialling every introducer of its bootstrap file that it is not linked to yet, even after it
 * joined through another one (a WELCOME lists only the servers its introducer knew then).
 */

import { join } from "node:path";
import { fixturePubkey, startMeshNode, waitLinked, withTempDir } from "./support/mod.ts";

/** A port that is free right now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test("a server that joined through one introducer still links to the others it lists", async () => {
  await withTempDir("socp_test_mesh_form_", async (root) => {
    const [portA, portB] = [freePort(), freePort()];
    const key = { a: await fixturePubkey("server0"), b: await fixturePubkey("server1") };
    const entry = (port: number, pubkey: string) => ({ host: "127.0.0.1", port, pubkey });
    const group = [key.a, key.b, await fixturePubkey("server2")];
    // B lists A, which is not up yet: B keeps retrying it.
    await using b = await startMeshNode({
      root,
      name: "b",
      key: "server1",
      bootstrap: [entry(portA, key.a)],
      group,
      args: ["--port", String(portB)],
    });
    // C lists B and A: it joins through B (A is down), and B's WELCOME cannot name A.
    await using c = await startMeshNode({
      root,
      name: "c",
      key: "server2",
      bootstrap: [entry(portB, key.b), entry(portA, key.a)],
      group,
    });
    await waitLinked(c, [b]);
    // A comes up with no bootstrap file; B joins through it. Nobody tells A about C: only C's
    // own dialling of the introducer A it lists makes the mesh full.
    await using a = await startMeshNode({
      root: join(root),
      name: "a",
      key: "server0",
      group,
      args: ["--port", String(portA)],
    });
    await waitLinked(a, [b]);
    await waitLinked(c, [a]);
    await waitLinked(a, [c]);
  });
});
