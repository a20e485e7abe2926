import assert from "node:assert/strict";
import { join } from "node:path";
import {
  encodePublicKey,
  encryptText,
  memoryTransportPair,
  signContent,
  type Transport,
} from "../shared/mod.ts";
import { withTimeout } from "../tests/support/timeout.ts";
import { FakeAccountServer } from "./_fake_account_server.ts";
import { FakeServer, fixtureKeyPair, IDS } from "./_test_util.ts";
import { normalizeServerUrl, runClient, type RunClientOptions } from "./mod.ts";

const generate = () => fixtureKeyPair("user0");
const enc = new TextEncoder();

function input(lines: string[], keepOpen = false): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const line of lines) controller.enqueue(enc.encode(line));
      if (!keepOpen) controller.close();
    },
  });
}

type Behaviour = "normal" | "name_in_use" | "hangup";

/** A scripted server: ACK + bob's advert, answers LIST_REQUEST, records what the client sent. */
async function scriptedServer(behaviour: Behaviour) {
  const [client, far] = memoryTransportPair();
  const server = new FakeServer(far, await fixtureKeyPair("server0"));
  const bob = await fixtureKeyPair("user1");
  const received: string[] = [];
  const done = (async () => {
    for (;;) {
      let env;
      try {
        env = await server.next(10_000);
      } catch {
        return;
      }
      received.push(env.type);
      if (env.type === "USER_HELLO") {
        if (behaviour === "name_in_use") {
          await server.send("ERROR", { code: "NAME_IN_USE", detail: "already here" }, {
            to: env.from,
          });
          continue;
        }
        await server.send("ACK", {
          msg_ref: "USER_HELLO_OK",
          server_id: server.id,
          server_pub: server.pub,
        }, {
          to: env.from,
        });
        await server.send("USER_ADVERTISE", {
          user_id: IDS.bob,
          server_id: server.id,
          meta: { display_name: "bob", pubkey: encodePublicKey(bob.publicKey) },
        }, { to: env.from });
        if (behaviour === "hangup") {
          await server.send("ERROR", { code: "MARK", detail: "about to hang up" }, {
            to: env.from,
          });
          far.close(1011, "server going down");
          return;
        }
      } else if (env.type === "PUBKEY_REQUEST") {
        const who = env.payload["user_id"] === IDS.bob ? bob : await fixtureKeyPair("user0");
        await server.send("PUBKEY_RESPONSE", {
          user_id: env.payload["user_id"] as string,
          pubkey: encodePublicKey(who.publicKey),
        }, { to: env.from });
      } else if (env.type === "LIST_REQUEST") {
        await server.send("LIST_RESPONSE", {
          online_users: [env.from, IDS.bob],
          users: [env.from, IDS.bob],
          display_names: { [IDS.bob]: "bob" },
        }, { to: env.from });
      }
    }
  })();
  return { client, far, received, done };
}

async function run(
  args: string[],
  lines: string[],
  behaviour: Behaviour = "normal",
  extra: Partial<RunClientOptions> = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "socp_mod_test_" });
  const srv = await scriptedServer(behaviour);
  let out = "";
  let err = "";
  try {
    const code = await withTimeout(
      runClient([join(dir, "alice.json"), ...args], {
        env: (name) => (name === "SOCP_SERVER" ? "ws://test.invalid:9" : undefined),
        stdin: input(lines, behaviour === "hangup"),
        write: (t) => (out += t),
        writeErr: (t) => (err += t),
        interactive: false,
        connect: (): Promise<Transport> => Promise.resolve(srv.client),
        generateKey: generate,
        ...extra,
      }),
      15_000,
      "runClient",
    );
    srv.far.close();
    await srv.done;
    const config = JSON.parse(await Deno.readTextFile(join(dir, "alice.json")));
    return {
      code,
      out,
      err,
      lines: out.split("\n").filter((l) => l.length > 0),
      config,
      received: srv.received,
      dir,
    };
  } finally {
    srv.far.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("runClient() in script mode runs piped commands and quits at end of input", async () => {
  const r = await run([], ["/tell bob hi there\n", "/list\n", "plain text\n"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, "");
  const id = r.config.user_id;
  const expect = [
    /^\[info\] Created a new identity [0-9a-f-]{36} in .*alice\.json$/,
    /^\[info\] Pinned the key of server 99999999 \(fp [0-9a-f:]+\) for ws:\/\/test\.invalid:9$/,
    new RegExp(`^\\[ready\\] connected as alice \\(${id}\\) to ws://test\\.invalid:9$`),
    /^\[presence\] bob \(22222222\) is online$/,
    /^\d\d:\d\d me → bob: hi there$/,
    new RegExp(`^\\[list\\] 2 online: alice \\(${id}\\) \\[you\\], bob \\(${IDS.bob}\\)$`),
    /^\[error\] Not a command; use \/tell <user> <text>/,
  ];
  assert.equal(r.lines.length, expect.length, r.out);
  for (const re of expect) assert.ok(r.lines.some((l) => re.test(l)), `${re} in\n${r.out}`);
  assert.deepEqual(r.received.filter((t) => !t.endsWith("_REQUEST")), [
    "USER_HELLO",
    "MSG_DIRECT",
    "CTRL_CLOSE",
  ]);
  assert.equal(r.config.servers["ws://test.invalid:9"].server_id, IDS.server);
  assert.ok(r.config.known_keys[IDS.bob], "bob's key pinned in the config");
});

Deno.test("runClient() --json prints one JSON event per line", async () => {
  const r = await run(["--json", "--name", "Alice B"], [
    "/tell bob hi\n",
    "/quit\n",
    "/tell bob never\n",
  ]);
  assert.equal(r.code, 0, r.err);
  const events = r.lines.map((l) => JSON.parse(l));
  assert.ok(events.every((e) => typeof e.event === "string"));
  const ready = events.find((e) => e.event === "ready");
  assert.deepEqual(ready, {
    event: "ready",
    user_id: r.config.user_id,
    display_name: "Alice B",
    server: "ws://test.invalid:9",
    pinned: true,
  });
  assert.deepEqual(events.filter((e) => e.event === "sent").map((e) => [e.kind, e.to]), [[
    "dm",
    IDS.bob,
  ]]);
  assert.equal(r.config.display_name, "Alice B");
  assert.equal(r.received.filter((t) => t === "MSG_DIRECT").length, 1, "nothing after /quit");
});

Deno.test("runClient() exits 2 with a message when the server closes the connection and reconnecting is off", async () => {
  const r = await run([], [], "hangup", { reconnectRounds: 0 });
  assert.equal(r.code, 2);
  assert.ok(r.lines.includes("[error] connection closed (1011): server going down"), r.out);
});

Deno.test("runClient() exits 1 when the server refuses the hello", async () => {
  const r = await run([], ["/list\n"], "name_in_use");
  assert.equal(r.code, 1);
  assert.ok(
    r.lines.some((l) => /^\[error\] NAME_IN_USE: already here; close the other session/.test(l)),
    r.out,
  );
});

Deno.test("runClient() handles --help, bad options and a corrupt config", async () => {
  let out = "";
  let err = "";
  const io = { write: (t: string) => (out += t), writeErr: (t: string) => (err += t) };
  assert.equal(await runClient(["--help"], io), 0);
  assert.match(out, /Usage: socp client <config.json> \[options\]/);
  assert.equal(await runClient(["a.json", "--bogus"], io), 1);
  assert.match(err, /socp client: .*bogus/);
  err = "";
  assert.equal(await runClient([], io), 1);
  assert.match(err, /Missing <config.json>/);
  err = "";
  assert.equal(await runClient(["a.json", "--sig-variant", "Q"], io), 1);
  assert.match(err, /--sig-variant must be one of A, B, C, D/);

  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "broken.json");
    await Deno.writeTextFile(path, "{{{");
    err = "";
    assert.equal(await runClient([path], io), 1);
    assert.match(err, /^socp client: Config file ".*broken\.json" is not valid JSON/);
    assert.ok(!err.includes("    at "), "no stack trace");
    err = "";
    assert.equal(
      await runClient([join(dir, "ok.json"), "--server", "http://x"], {
        ...io,
        generateKey: generate,
      }),
      1,
    );
    assert.match(err, /must start with ws:\/\/ or wss:\/\//);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("normalizeServerUrl() drops a bare trailing slash", () => {
  assert.equal(normalizeServerUrl("ws://127.0.0.1:8765/"), "ws://127.0.0.1:8765");
  assert.equal(normalizeServerUrl("WSS://Example.org/chat"), "wss://example.org/chat");
});

async function runAccounts(
  args: string[],
  lines: string[],
  setup: (server: FakeAccountServer) => Promise<void> = () => Promise.resolve(),
) {
  const dir = await Deno.makeTempDir({ prefix: "socp_mod_test_" });
  const server = await FakeAccountServer.create();
  await setup(server);
  let out = "";
  let err = "";
  try {
    const code = await withTimeout(
      runClient([join(dir, "me.json"), "--server", "ws://test.invalid:9", ...args], {
        env: () => undefined,
        stdin: input(lines.map((l) => l + "\n")),
        write: (t) => (out += t),
        writeErr: (t) => (err += t),
        interactive: false,
        connect: server.connect,
        generateKey: generate,
      }),
      15_000,
      "runClient",
    );
    await server.close();
    const config = JSON.parse(await Deno.readTextFile(join(dir, "me.json")));
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    return { code, out, err, lines: out.split("\n").filter((l) => l), config, files, server };
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("runClient() --login takes the password from the next input line and keeps no key", async () => {
  const r = await runAccounts(["--login", "alice"], [
    "wrong",
    "pw",
    "/accounts *",
    "/accounts [a-",
    "/logout",
    "/list",
    "/quit",
  ], async (s) => void await s.addAccount("Alice", IDS.alice, await generate(), "pw"));
  assert.equal(r.code, 0, r.out + r.err);
  const expect = [
    /^\[info\] Created .*me\.json for the account "alice" \(no local key\)$/,
    /^\[error\] BAD_PASSWORD: Wrong username or password \(2 left\)$/,
    new RegExp(
      `^\\[ready\\] connected as alice \\(${IDS.alice}\\) to ws://test\\.invalid:9 \\(account "Alice"\\)$`,
    ),
    /^\[info\] logged in to account "Alice"$/,
    /^\[accounts\] 1 matching "\*": Alice \(online\)$/,
    /^\[error\] BAD_REQUEST: Malformed pattern "\[a-": "\[" is never closed$/,
    /^\[info\] logged out; \/login <username> or \/quit$/,
    /^\[error\] Not logged in; \/login <username> or \/quit$/,
  ];
  for (const re of expect) assert.ok(r.lines.some((l) => re.test(l)), `${re} in\n${r.out}`);
  assert.equal(r.lines.length, expect.length + 1, r.out); // + the server pin line
  assert.deepEqual(r.files, ["me.json"], "no key file for an account login");
  assert.equal(r.config.account, "Alice");
  assert.equal(r.config.user_id, undefined);
  assert.ok(!r.out.includes("pw"), "the password is never printed");
});

Deno.test("runClient() --login exits 1 when blocked or when no password comes", async () => {
  const blocked = await runAccounts(["--login", "alice", "--json"], ["a", "b", "c", "pw"], async (
    s,
  ) => void await s.addAccount("alice", IDS.alice, await generate(), "pw"));
  assert.equal(blocked.code, 1);
  const last = JSON.parse(blocked.lines.at(-1)!);
  assert.equal(last.event, "error");
  assert.equal(last.code, "LOGIN_BLOCKED");
  assert.match(last.detail, /blocked for 9 seconds/);
  const none = await runAccounts(["--login", "alice"], []);
  assert.equal(none.code, 1);
  assert.match(none.lines.at(-1)!, /^\[error\] No password given for "alice"; not logged in$/);
  const bad = await runAccounts(["--login", "a b"], []).catch((e) => e);
  assert.ok(bad instanceof Error, "no config is written for a bad --login");
});

Deno.test("runClient() /register in a script reads the password twice from the next lines", async () => {
  const r = await runAccounts(["--json"], [
    "/register alice",
    "password1",
    "password1",
    "/tell alice hi",
  ]);
  assert.equal(r.code, 0, r.out + r.err);
  const events = r.lines.map((l) => JSON.parse(l));
  const registered = events.find((e) => e.event === "account");
  assert.deepEqual(registered, {
    event: "account",
    action: "registered",
    username: "alice",
    user_id: r.config.user_id,
  });
  assert.equal(r.config.account, "alice");
  assert.deepEqual(r.files, ["me.history.json", "me.json", "me.key.pem"]);
  assert.ok(r.server.accounts.has("alice"));
});

/** Logs alice in on a terminal, lists accounts, then types `ending`; returns the exit code. */
async function terminalSession(ending: string): Promise<{ code: number; out: string }> {
  const dir = await Deno.makeTempDir({ prefix: "socp_mod_test_" });
  const server = await FakeAccountServer.create();
  await server.addAccount("alice", IDS.alice, await generate(), "hunter2");
  let out = "";
  const listeners = new Set<() => void>();
  const typed = new TransformStream<Uint8Array, Uint8Array>();
  const keys = typed.writable.getWriter();
  try {
    const run = runClient([
      join(dir, "a.json"),
      "--server",
      "ws://test.invalid:9",
      "--login",
      "alice",
    ], {
      env: () => undefined,
      stdin: typed.readable,
      write: (t) => {
        out += t;
        for (const listener of [...listeners]) listener();
      },
      writeErr: () => {},
      interactive: true,
      connect: server.connect,
    });
    const until = (text: string) =>
      withTimeout(
        new Promise<void>((resolve) => {
          const check = () => {
            if (!out.includes(text)) return;
            listeners.delete(check);
            resolve();
          };
          listeners.add(check);
          check();
        }),
        5000,
        `"${text}" in the output`,
      );
    await until("Password for alice: ");
    await keys.write(enc.encode("hunter2\r"));
    await until("[ready] connected as alice");
    await keys.write(enc.encode("/accounts al*\r"));
    await until('[accounts] 1 matching "al*":\r\n  alice (online)');
    await keys.write(enc.encode(ending));
    return { code: await withTimeout(run, 10_000, "runClient"), out };
  } finally {
    await keys.close().catch(() => {});
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("runClient() on a terminal asks for the password on the prompt line without echo", async () => {
  const { code, out } = await terminalSession("\x03");
  assert.equal(code, 0);
  assert.ok(!out.includes("hunter2"), "the password is never echoed");
});

Deno.test("runClient() on a terminal exits on /quit while the keyboard stays open", async () => {
  const { code, out } = await terminalSession("/quit\r");
  assert.equal(code, 0);
  assert.ok(out.includes("/quit"));
});

Deno.test("runClient() takes --server several times and connects to the first that answers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_mod_test_" });
  const server = await FakeAccountServer.create();
  const dialed: string[] = [];
  let out = "";
  try {
    const code = await withTimeout(
      runClient([
        join(dir, "me.json"),
        "--server",
        "ws://a.invalid:1",
        "--server",
        "ws://b.invalid:2/",
        "--json",
      ], {
        env: () => undefined,
        stdin: input(["/quit\n"]),
        write: (t) => (out += t),
        writeErr: () => {},
        interactive: false,
        connect: (url) => {
          dialed.push(url);
          return url === "ws://a.invalid:1"
            ? Promise.reject(new Error("Connection refused"))
            : server.connect();
        },
        generateKey: generate,
      }),
      15_000,
      "runClient",
    );
    assert.equal(code, 0, out);
    assert.deepEqual(dialed, ["ws://a.invalid:1", "ws://b.invalid:2"]);
    const ready = out.split("\n").filter((l) => l).map((l) => JSON.parse(l)).find((e) =>
      e.event === "ready"
    );
    assert.equal(ready.server, "ws://b.invalid:2");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runClient() in a script refuses /login to the account it is in before reading a password", async () => {
  const r = await runAccounts(
    ["--login", "alice", "--json"],
    ["pw", "/login alice", "/tell nobody hi", "/quit"],
    async (s) => void await s.addAccount("alice", IDS.alice, await generate(), "pw"),
  );
  assert.equal(r.code, 0, r.out + r.err);
  const errors = r.lines.map((l) => JSON.parse(l)).filter((e) => e.event === "error");
  assert.deepEqual(errors.map((e) => e.detail), [
    'You are logged in to "alice" already; /logout first to log in again',
    'Unknown user "nobody"; /list shows who is online, /accounts <pattern> lists accounts',
  ]);
  const proofs = r.server.received.flat().filter((t) => t === "LOGIN_PROOF");
  assert.equal(proofs.length, 1, "the next lines were not taken as passwords");
});

/** Runs the client in script mode on `dir/me.json` against `server`; returns code and lines. */
async function runIn(
  dir: string,
  server: FakeAccountServer,
  args: string[],
  lines: string[],
): Promise<{ code: number; lines: string[]; err: string }> {
  let out = "";
  let err = "";
  const code = await withTimeout(
    runClient([join(dir, "me.json"), "--server", "ws://test.invalid:9", ...args], {
      env: () => undefined,
      stdin: input(lines.map((l) => l + "\n")),
      write: (t) => (out += t),
      writeErr: (t) => (err += t),
      interactive: false,
      connect: server.connect,
      generateKey: generate,
    }),
    15_000,
    "runClient",
  );
  return { code, lines: out.split("\n").filter((l) => l), err };
}

Deno.test("runClient() --forget-server-key forgets a changed server key after showing both fingerprints", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_mod_test_" });
  const server = await FakeAccountServer.create();
  try {
    const url = "ws://test.invalid:9";
    const first = await runIn(dir, server, [], ["/quit"]);
    assert.equal(first.code, 0, first.lines.join("\n"));
    // The server gets a new key: the pin no longer matches.
    const path = join(dir, "me.json");
    const config = JSON.parse(await Deno.readTextFile(path));
    const oldKey = encodePublicKey((await fixtureKeyPair("server3")).publicKey);
    config.servers[url].pubkey = oldKey;
    await Deno.writeTextFile(path, JSON.stringify(config));
    const refused = await runIn(dir, server, [], ["/quit"]);
    assert.equal(refused.code, 1);
    const changed = refused.lines.find((l) => l.includes("SERVER KEY CHANGED"))!;
    assert.match(changed, new RegExp(`--forget-server-key ${url}$`), "it says how to go on");

    const forgot = await runIn(dir, server, ["--forget-server-key", `${url}/`], ["/quit"]);
    assert.equal(forgot.code, 0, forgot.lines.join("\n"));
    const oldFp = /fp ([0-9a-f:]+)\)/.exec(forgot.lines.find((l) => l.includes("Forgot"))!)![1]!;
    const pinned = forgot.lines.find((l) => l.includes("Pinned the key"))!;
    assert.match(pinned, new RegExp(`replacing the forgotten key fp ${oldFp}$`));
    assert.ok(changed.includes(`fp ${oldFp}`), "the same old fingerprint as in the refusal");
    const after = JSON.parse(await Deno.readTextFile(path));
    assert.equal(after.servers[url].pubkey, server.pub);

    const none = await runIn(dir, server, ["--forget-server-key", "ws://other.invalid:1"], []);
    assert.equal(none.code, 1);
    assert.match(none.lines.at(-1)!, /No server key is pinned for ws:\/\/other\.invalid:1/);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runClient() keeps the messages in a private file, shows them after a restart; --no-history keeps nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_mod_test_" });
  const server = await FakeAccountServer.create();
  try {
    await server.addAccount("bob", IDS.bob, await fixtureKeyPair("user1"), "pw");
    const first = await runIn(dir, server, [], ["/tell bob see you tomorrow", "/quit"]);
    assert.equal(first.code, 0, first.lines.join("\n"));
    const file = join(dir, "me.history.json");
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert.ok((await Deno.readTextFile(file)).includes("see you tomorrow"));
    const again = await runIn(dir, server, [], ["/quit"]);
    const head = again.lines.findIndex((l) => l.includes("kept on this device"));
    assert.ok(head >= 0, again.lines.join("\n"));
    assert.match(again.lines[head + 1]!, /^\d\d:\d\d me → bob: see you tomorrow$/);
    await Deno.remove(file);
    const off = await runIn(dir, server, ["--no-history"], ["/tell bob not kept", "/history"]);
    assert.match(
      off.lines.at(-1)!,
      /No messages are kept on this device \(the client runs with --no-history\)/,
    );
    assert.ok(!(await Deno.stat(file).then(() => true, () => false)), "no history file");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runClient() on a terminal colours lines, rings for a DM and keeps typed lines, not passwords", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_mod_test_" });
  const server = await FakeAccountServer.create();
  await server.addAccount("alice", IDS.alice, await generate(), "hunter22");
  let out = "";
  const listeners = new Set<() => void>();
  const typed = new TransformStream<Uint8Array, Uint8Array>();
  const keys = typed.writable.getWriter();
  const until = (text: string) =>
    withTimeout(
      new Promise<void>((resolve) => {
        const check = () => {
          if (!out.includes(text)) return;
          listeners.delete(check);
          resolve();
        };
        listeners.add(check);
        check();
      }),
      5000,
      `"${text}" in the output`,
    );
  try {
    const run = runClient([
      join(dir, "a.json"),
      "--server",
      "ws://test.invalid:9",
      "--login",
      "alice",
    ], {
      env: () => undefined,
      stdin: typed.readable,
      write: (t) => {
        out += t;
        for (const listener of [...listeners]) listener();
      },
      writeErr: () => {},
      interactive: true,
      color: true,
      connect: server.connect,
    });
    await until("Password for alice: ");
    await keys.write(enc.encode("hunter22\r"));
    await until("[ready] connected as alice");
    await keys.write(enc.encode("/lsit\r"));
    await until("did you mean /list?");
    assert.ok(out.includes("\x1b[31m[error] Unknown command"), "errors in red");
    const bob = await fixtureKeyPair("user1");
    server.names.set(IDS.bob, "bob");
    server.known.set(IDS.bob, encodePublicKey(bob.publicKey));
    const ciphertext = await encryptText((await generate()).publicKey, "ding");
    const ts = Date.now();
    const content_sig = await signContent(bob.privateKey, {
      ciphertext,
      from: IDS.bob,
      to: IDS.alice,
      ts,
    }, "A");
    await server.broadcast("USER_DELIVER", {
      ciphertext,
      sender: IDS.bob,
      sender_pub: encodePublicKey(bob.publicKey),
      content_sig,
      msg_ts: ts,
    });
    await until("→ me: ding");
    assert.ok(out.includes("→ me: ding\r\n> \x07"), "the bell rings after the message");
    await keys.write(enc.encode("/quit\r"));
    assert.equal(await withTimeout(run, 10_000, "runClient"), 0);
    const kept = await Deno.readTextFile(join(dir, "a.input_history"));
    assert.deepEqual(kept.split("\n").filter((l) => l), ["/lsit", "/quit"]);
    assert.ok(!kept.includes("hunter22"), "a password never reaches the history");
    assert.equal((await Deno.stat(join(dir, "a.input_history"))).mode! & 0o777, 0o600);
  } finally {
    await keys.close().catch(() => {});
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
