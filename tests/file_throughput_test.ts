/**
 * A 2 MiB file between two real client processes on one real server: both clients announce
 * `file-aes-gcm`, so the file goes in AES-GCM chunks of 44 KiB (docs/protocol.md, "Files"), and
 * arrives with the same SHA-256, also across two linked servers. Speed is measured by
 * bench/file_throughput.ts, never asserted.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../shared/mod.ts";
import {
  onlineEvent,
  readyClient,
  type ServerNode,
  startMesh,
  startServer,
  TIMEOUTS,
  writeClientConfig,
} from "./support/mod.ts";

Deno.test("a 2 MiB file crosses one server between two client processes in AES-GCM chunks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_test_file_aes_" });
  try {
    await using server = await startServer();
    const aliceConfig = await writeClientConfig(dir, "alice", "user0");
    const bobConfig = await writeClientConfig(dir, "bob", "user1");
    await using alice = await readyClient(server.url, aliceConfig.path);
    await using bob = await readyClient(server.url, bobConfig.path);
    await alice.waitFor(onlineEvent(bobConfig));

    const bytes = crypto.getRandomValues(new Uint8Array(64 * 1024));
    const data = new Uint8Array(2 * 1024 * 1024 + 123);
    for (let i = 0; i < data.length; i += bytes.length) {
      data.set(bytes.subarray(0, data.length - i), i);
    }
    data[0] = 1; // not all repeats: a swapped chunk would not go unnoticed by the hash
    const path = join(dir, "big.bin");
    await Deno.writeFile(path, data);

    await alice.line(`/file bob ${path}`);
    const sent = await alice.waitFor("sent", 2 * TIMEOUTS.event);
    assert.equal(sent.kind, "file");
    assert.equal(sent.parts, Math.ceil(data.length / (44 * 1024)), "AES-GCM chunks of 44 KiB");
    const file = await bob.waitFor("file", 2 * TIMEOUTS.event);
    assert.equal(file.ok, true, JSON.stringify(file));
    assert.equal(file.from, aliceConfig.userId);
    assert.equal(file.size, data.length);
    const received = await Deno.readFile(String(file.path));
    assert.equal(await sha256Hex(received), await sha256Hex(data));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a 2 MiB file crosses two linked servers in AES-GCM chunks: capabilities travel with presence", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_test_file_aes_" });
  try {
    await using mesh = await startMesh(2);
    const [a, b] = mesh.nodes as [ServerNode, ServerNode];
    const aliceConfig = await writeClientConfig(dir, "alice", "user0");
    const bobConfig = await writeClientConfig(dir, "bob", "user1");
    await using alice = await readyClient(a.url, aliceConfig.path);
    await using bob = await readyClient(b.url, bobConfig.path);
    await alice.waitFor(onlineEvent(bobConfig));

    const data = crypto.getRandomValues(new Uint8Array(65_536));
    const big = new Uint8Array(2 * 1024 * 1024 + 7);
    for (let i = 0; i < big.length; i += data.length) big.set(data.subarray(0, big.length - i), i);
    big[1] = 2;
    const path = join(dir, "big.bin");
    await Deno.writeFile(path, big);

    await alice.line(`/file bob ${path}`);
    const sent = await alice.waitFor("sent", 2 * TIMEOUTS.event);
    assert.equal(sent.parts, Math.ceil(big.length / (44 * 1024)), "AES-GCM chunks across servers");
    const file = await bob.waitFor("file", 2 * TIMEOUTS.event);
    assert.equal(file.ok, true, JSON.stringify(file));
    assert.equal(await sha256Hex(await Deno.readFile(String(file.path))), await sha256Hex(big));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
