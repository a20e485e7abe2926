/**
 * Integration tests of bounded work and hygiene with real `socp server` processes: account
 * patterns are matched in linear time (no ReDoS stalls other users), account names are listed
 * only to identified connections and at a bounded rate, registrations are limited per client
 * address, the data directory and its files are owner-only, and frames cannot forge log lines.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { serializeEnvelope } from "../shared/mod.ts";
import {
  anonymousAccountsRequest,
  connectUser,
  isAck,
  isError,
  preHelloFrame,
  RawConnection,
  registerUser,
  runMain,
  startServer,
  TIMEOUTS,
  withTempDir,
} from "./support/mod.ts";

/**
 * The suite's generous frame deadline: a linear-time server answers in milliseconds, a
 * backtracking one would need minutes for the four names below.
 */
const PROMPT_MS = TIMEOUTS.frame;

Deno.test("a catastrophic /regex/ is answered at once and does not stall another user's request", async () => {
  await using server = await startServer();
  // The longest legal names: 31 "a" and one more character. A backtracking engine needs about
  // 2^31 steps to reject each for /^(a+)+$/ (over half a minute each here, so minutes for the
  // four), blocking the whole server meanwhile; a linear-time one answers in milliseconds.
  const names = ["_", "-", ".", "b"].map((last) => "a".repeat(31) + last);
  for (const [i, each] of names.entries()) {
    await using owner = await connectUser(server.url, `user${3 + i}` as "user3");
    assert.ok(isAck("REGISTER_OK")(await registerUser(owner, each, "pw")));
  }
  const name = names[0]!;
  await using mallory = await connectUser(server.url, "user1", { displayName: "mallory" });
  await using bystander = await connectUser(server.url, "user2", { displayName: "bystander" });

  const [evil, list] = await Promise.all([
    mallory.envelope("ACCOUNTS_REQUEST", mallory.serverId, { pattern: "/^(a+)+$/" }),
    bystander.envelope("LIST_REQUEST", bystander.serverId, {}),
  ]);
  mallory.send(serializeEnvelope(evil));
  bystander.send(serializeEnvelope(list));
  const answered = await bystander.next("LIST_RESPONSE", PROMPT_MS);
  assert.ok((answered.payload["online_users"] as string[]).includes(bystander.userId));
  const reply = await mallory.next(
    (f) => f.type === "ACCOUNTS_RESPONSE" || f.type === "ERROR",
    PROMPT_MS,
  );
  assert.equal(reply.type, "ACCOUNTS_RESPONSE", JSON.stringify(reply.payload));
  assert.deepEqual(reply.payload["accounts"], []);

  // The same pattern finds a name that does match; a pattern over 64 characters is refused.
  mallory.send(serializeEnvelope(
    await mallory.envelope("ACCOUNTS_REQUEST", mallory.serverId, { pattern: "/^(a+)+_$/" }),
  ));
  const found = await mallory.next("ACCOUNTS_RESPONSE", PROMPT_MS);
  assert.deepEqual((found.payload["accounts"] as { username: string }[]).map((a) => a.username), [
    name,
  ]);
  mallory.send(serializeEnvelope(
    await mallory.envelope("ACCOUNTS_REQUEST", mallory.serverId, { pattern: "*".repeat(65) }),
  ));
  const long = await mallory.nextError("BAD_REQUEST");
  assert.match(String(long.payload["detail"]), /is 65 characters long; at most 64 are allowed/);
});

Deno.test("ACCOUNTS_REQUEST before USER_HELLO is refused with NOT_LOGGED_IN and lists nothing", async () => {
  await using server = await startServer();
  await using victim = await connectUser(server.url, "user0");
  assert.ok(isAck("REGISTER_OK")(await registerUser(victim, "secretname", "pw")));
  const reply = await anonymousAccountsRequest(server.url, "*", server.pubkey);
  assert.equal(reply.type, "ERROR");
  assert.equal(reply.payload["code"], "NOT_LOGGED_IN");
  assert.match(String(reply.payload["detail"]), /Log in or say USER_HELLO first/);
  assert.ok(!JSON.stringify(reply).includes("secretname"));

  // The refusal does not end the login phase: the same connection can still log in.
  await using conn = await RawConnection.open(server.url, { serverPub: server.pubkey });
  conn.send(preHelloFrame("ACCOUNTS_REQUEST", { pattern: "s*" }));
  await conn.nextError("NOT_LOGGED_IN");
  conn.send(preHelloFrame("LOGIN_START", { username: "secretname" }));
  await conn.next("LOGIN_PARAMS");
});

Deno.test("PRESENCE_SINCE_REQUEST is rate limited per connection", async () => {
  await using server = await startServer();
  await using user = await connectUser(server.url, "user0");
  const count = 14;
  for (let i = 0; i < count; i++) {
    await user.sendFrame("PRESENCE_SINCE_REQUEST", user.serverId, { seconds: 3600 });
  }
  const answers = [];
  for (let i = 0; i < count; i++) {
    answers.push(
      await user.next((f) => f.type === "PRESENCE_SINCE_RESPONSE" || f.type === "ERROR"),
    );
  }
  const limited = answers.filter(isError("RATE_LIMIT"));
  // 10 at once, then one a second: 14 sent within far less than 3 s leave at least 2 refused.
  assert.ok(limited.length >= 2, `${limited.length} of ${count} were limited`);
  assert.equal(
    answers.filter((f) => f.type === "PRESENCE_SINCE_RESPONSE").length + limited.length,
    count,
  );
  assert.match(
    String(limited[0]!.payload["detail"]),
    /^At most 10 presence queries per 10 s; try again in \d+ s$/,
  );
});

Deno.test("ACCOUNTS_REQUEST is rate limited per connection", async () => {
  await using server = await startServer();
  await using user = await connectUser(server.url, "user0");
  const count = 14;
  for (let i = 0; i < count; i++) {
    await user.sendFrame("ACCOUNTS_REQUEST", user.serverId, { pattern: `x${i}*` });
  }
  const answers = [];
  for (let i = 0; i < count; i++) {
    answers.push(await user.next((f) => f.type === "ACCOUNTS_RESPONSE" || f.type === "ERROR"));
  }
  const limited = answers.filter(isError("RATE_LIMIT"));
  assert.ok(limited.length >= 2, `${limited.length} of ${count} were limited`);
  assert.equal(
    answers.filter((f) => f.type === "ACCOUNTS_RESPONSE").length + limited.length,
    count,
  );
  assert.match(
    String(limited[0]!.payload["detail"]),
    /^At most 5 account lists per 10 s \(bursts of 10\); try again in \d+ s$/,
  );
});

Deno.test("REGISTER is limited per client address across connections (--register-rate)", async () => {
  await using server = await startServer({ args: ["--register-rate", "2"] });
  const keys = ["user0", "user1", "user2"] as const;
  const answers = [];
  for (const [i, key] of keys.entries()) {
    // A fresh connection each time: the limit follows the address, not the connection.
    await using user = await connectUser(server.url, key);
    answers.push(await registerUser(user, `reg${i}`, "pw"));
  }
  assert.ok(isAck("REGISTER_OK")(answers[0]!));
  assert.ok(isAck("REGISTER_OK")(answers[1]!));
  const refused = answers[2]!;
  assert.equal(refused.type, "ERROR");
  assert.equal(refused.payload["code"], "RATE_LIMIT");
  assert.match(
    String(refused.payload["detail"]),
    /^Too many registrations from this address \(at most 2 per hour\); try again in \d+ minutes$/,
  );
});

function modeOf(path: string): string {
  return (Deno.statSync(path).mode! & 0o777).toString(8).padStart(4, "0");
}

Deno.test({
  name: "the data directory is 0700 and the database, its -wal/-shm and the key are 0600",
  ignore: Deno.build.os === "windows",
  async fn() {
    await withTempDir("socp_test_modes_", async (dir) => {
      const dataDir = join(dir, "data");
      await Deno.mkdir(dataDir, { mode: 0o755 });
      await using server = await startServer({ dataDir });
      const db = join(dataDir, "socp.db");
      const key = join(dataDir, "server_key.pem");
      const check = () => {
        assert.equal(modeOf(dataDir), "0700");
        for (const file of [db, `${db}-wal`, `${db}-shm`, key]) {
          assert.equal(modeOf(file), "0600", file);
        }
      };
      check();

      // Widened by hand while stopped: the next start narrows everything again.
      await server.kill();
      Deno.chmodSync(dataDir, 0o755);
      Deno.chmodSync(db, 0o644);
      Deno.chmodSync(key, 0o644);
      for (const side of [`${db}-wal`, `${db}-shm`]) {
        await Deno.writeFile(side, new Uint8Array(), { append: true, mode: 0o644 });
        Deno.chmodSync(side, 0o644);
      }
      await server.restart();
      check();
    });
  },
});

Deno.test("a data directory path that is a file is a one-line error", async () => {
  await withTempDir("socp_test_modes_", async (dir) => {
    const file = join(dir, "not-a-dir");
    await Deno.writeTextFile(file, "x");
    for (const extra of [[], ["--print-identity"]]) {
      const out = await runMain(["server", "--port", "0", "--data-dir", file, ...extra]);
      assert.equal(out.code, 1);
      assert.equal(
        out.stderr,
        `socp server: Data directory "${file}" exists but is not a directory; choose another --data-dir\n`,
      );
    }
  });
});

/** Control characters that must never reach the log raw (line feeds only end lines). */
const RAW_CONTROL = /[\p{Cc}\u2028\u2029]/u;

Deno.test("frames with control characters cannot split or forge server log lines", async () => {
  await using server = await startServer();
  const forged = "2000-01-01T00:00:00.000Z ERROR [srv] pwned";
  // A first frame whose type carries a newline, a NUL and an ANSI escape.
  await using raw = await RawConnection.open(server.url, { serverPub: server.pubkey });
  raw.send(JSON.stringify({
    type: `EVIL\n${forged}\u0000\u001b[2J`,
    from: "",
    to: "server",
    ts: Date.now(),
    payload: {},
  }));
  await raw.nextError();
  // A user's ERROR frame is logged with its payload: JSON keeps U+2028, DEL and C1 raw.
  await using user = await connectUser(server.url, "user0");
  await user.sendFrame("ERROR", user.serverId, {
    code: "X",
    detail: `a\u2028${forged}\u2029\u007f\u0085b`,
  });
  await server.waitForLog(/ERROR from user/);
  await server.waitForLog(/rejected connection/);

  const text = server.stderrText().replaceAll("\n", "");
  assert.ok(!RAW_CONTROL.test(text), JSON.stringify(text.match(RAW_CONTROL)));
  const lines = server.logLines();
  assert.ok(!lines.some((l) => l.startsWith("2000-01-01")), "no forged line");
  const rejected = lines.find((l) => l.includes("rejected connection"))!;
  assert.match(rejected, /EVIL\\n2000-01-01T00:00:00\.000Z ERROR \[srv\] pwned/);
  assert.match(rejected, /\\x00\\x1b\[2J/);
  const logged = lines.find((l) => l.includes("ERROR from user"))!;
  assert.match(logged, /a\\u2028.*\\u2029\\x7f\\x85b/);
});
