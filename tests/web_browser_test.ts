/**
 * The web client in a real headless Chromium against real servers. On a 2-server mesh a browser
 * user logs in to an account registered over raw frames, exchanges DMs and public messages both
 * ways with a user on the other server, receives a file (downloaded and hashed) and sends one,
 * sees presence change, makes a group and blocks a user, survives the loss of its server
 * (failover to the group's other server), and is warned loudly when the server at its URL
 * presents another key. On one server a browser user creates an identity (keyboard only),
 * registers it and logs back in to it. Screenshots of the main screen (desktop and phone size)
 * are written to a temporary directory whose path is printed, for a person to look at.
 *
 * Fails (is not skipped) without Chromium; .ci/run installs Debian's package.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { decryptBlock, encryptText, type Envelope, sha256Hex } from "../shared/mod.ts";
import { fixtureKeyPair } from "./fixtures/keys.ts";
import { launchChromium } from "./support/browser.ts";
import {
  connectUser,
  isAck,
  type RawUser,
  registerUser,
  startMesh,
  startServer,
  TIMEOUTS,
  waitForAccounts,
} from "./support/mod.ts";

const PASSWORD = "correct horse battery";
const PUBLIC_CHANNEL = "public";
const WAIT = { timeout: TIMEOUTS.event };

/** Reassembles the next file `user` is sent (FILE_START, FILE_CHUNKs, FILE_END). */
async function receiveFile(user: RawUser): Promise<{ start: Envelope; bytes: Uint8Array }> {
  const start = await user.next("FILE_START");
  const fileId = start.payload["file_id"];
  const chunks = new Map<number, Uint8Array>();
  for (;;) {
    const frame = await user.next((f) =>
      (f.type === "FILE_CHUNK" || f.type === "FILE_END") && f.payload["file_id"] === fileId
    );
    if (frame.type === "FILE_END") break;
    chunks.set(
      Number(frame.payload["index"]),
      await decryptBlock(user.keys.privateKey, String(frame.payload["ciphertext"])),
    );
  }
  const parts = [...chunks.keys()].sort((a, b) => a - b).map((i) => chunks.get(i)!);
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    bytes.set(p, offset);
    offset += p.length;
  }
  return { start, bytes };
}

async function login(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel("Username", { exact: true }).first().fill(username);
  await page.getByLabel("Password", { exact: true }).first().fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
}

function conversation(page: Page, userId: string) {
  return page.locator(`[data-conversation="${userId}"]`);
}

Deno.test({
  name:
    "the web client in Chromium logs in, chats across a mesh, moves files and warns of a changed server key",
  // playwright-core keeps its connection to the browser process in timers and pipes that
  // close asynchronously after the browser exits; everything this test starts is stopped in
  // its finally blocks.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using mesh = await startMesh(2);
    const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];

    // alice's account, registered over raw frames on server A (then that session ends).
    const aliceKeys = await fixtureKeyPair("user0");
    let aliceId: string;
    {
      await using raw = await connectUser(a.url, "user0", {
        serverPub: a.pubkey,
        displayName: "alice",
      });
      aliceId = raw.userId;
      const answer = await registerUser(raw, "alice", PASSWORD);
      assert.ok(isAck("REGISTER_OK")(answer), JSON.stringify(answer.payload));
    }
    const alice = { userId: aliceId, keys: aliceKeys };

    // bob, a raw user on the other server of the mesh.
    await using bob = await connectUser(b.url, "user1", {
      serverPub: b.pubkey,
      displayName: "bob",
    });

    await using browser = await launchChromium();
    const page = await browser.context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" && !/Failed to load resource|WebSocket/.test(m.text())) {
        problems.push(`console error: ${m.text()}`);
      }
    });
    page.on("dialog", (dialog) => void dialog.accept());
    const origin = `http://127.0.0.1:${a.port}`;

    // Log in: LOGIN_START/LOGIN_PROOF, the key unsealed in the page, a signed USER_HELLO.
    await page.goto(`${origin}/`);
    await page.waitForSelector("body[data-ready=true]", WAIT);
    await login(page, "alice", PASSWORD);
    await page.locator("#chat-view").waitFor({ state: "visible", ...WAIT });
    assert.match(await page.locator("#status").innerText(), /server key pinned/);
    assert.match(await page.locator("#me-name").innerText(), /alice/);
    const pins = await page.evaluate(() => localStorage.getItem("socp.pins.servers.v1"));
    assert.ok(pins?.includes(a.pubkey), "the server key is pinned in the browser's storage");
    assert.ok(!(await page.content()).includes(PASSWORD), "the password is not kept in the page");

    // Presence: bob (server B) is listed online.
    await conversation(page, bob.userId).waitFor(WAIT);
    assert.match(await conversation(page, bob.userId).innerText(), /bob/);

    // bob → alice, across the mesh: shown verified in bob's conversation.
    await bob.next((f) => f.type === "USER_ADVERTISE" && f.payload["user_id"] === aliceId);
    await bob.dm(alice, "hello from bob");
    await conversation(page, bob.userId).locator(".unread").waitFor(WAIT);
    await conversation(page, bob.userId).click();
    const incoming = page.locator("#messages li.msg-in", { hasText: "hello from bob" });
    await incoming.waitFor(WAIT);
    assert.equal(await incoming.locator(".badge-ok").innerText(), "✓ verified");

    // alice → bob: Enter sends; bob decrypts it and checks the content signature.
    const box = page.getByLabel("Message", { exact: true });
    await expectFocused(page, "composer-text");
    await box.fill("hi bob, from the browser");
    await box.press("Enter");
    const dm = await bob.nextDm(aliceId);
    assert.equal(dm.text, "hi bob, from the browser");
    await page.locator("#messages li.msg-out .badge-ok", { hasText: "sent" }).waitFor(WAIT);
    assert.equal(await box.inputValue(), "", "the box is cleared after sending");

    // The public channel: one MSG_PUBLIC_CHANNEL per member, encrypted for each, both ways.
    await bob.sendPublic(aliceId, await encryptText(aliceKeys.publicKey, "hello everyone"));
    await conversation(page, PUBLIC_CHANNEL).click();
    const publicIn = page.locator("#messages li.msg-in", { hasText: "hello everyone" });
    await publicIn.waitFor(WAIT);
    assert.equal(await publicIn.locator(".badge-ok").innerText(), "✓ verified");
    await box.fill("hello from alice to all");
    await box.press("Enter");
    const publicOut = await bob.next("MSG_PUBLIC_CHANNEL");
    assert.equal(await bob.decrypt(publicOut), "hello from alice to all");
    await conversation(page, bob.userId).click();

    // bob sends a file: the page checks size and SHA-256 and offers it for download.
    const fileBytes = crypto.getRandomValues(new Uint8Array(3000));
    const sent = await bob.sendFile(alice, { name: "notes.bin", bytes: fileBytes });
    const link = page.getByRole("link", { name: "Download notes.bin" });
    await link.waitFor(WAIT);
    const [download] = await Promise.all([page.waitForEvent("download", WAIT), link.click()]);
    const saved = await download.path();
    assert.equal(download.suggestedFilename(), "notes.bin");
    assert.equal(await sha256Hex(await Deno.readFile(saved)), sent.sha256);

    // alice sends a file back through the file picker; bob reassembles and hashes it.
    const upload = crypto.getRandomValues(new Uint8Array(1500));
    const received = receiveFile(bob);
    await page.setInputFiles("#file-input", {
      name: "from-alice.bin",
      mimeType: "application/octet-stream",
      buffer: Buffer.from(upload),
    });
    const { start, bytes } = await received;
    assert.equal(start.payload["name"], "from-alice.bin");
    assert.equal(start.payload["sender"] ?? start.from, aliceId);
    assert.equal(await sha256Hex(bytes), await sha256Hex(upload));
    assert.equal(start.payload["sha256"], await sha256Hex(upload));

    // Presence changes: carol comes online on server B, then leaves.
    let carolId: string;
    {
      await using carol = await connectUser(b.url, "user2", {
        serverPub: b.pubkey,
        displayName: "carol",
      });
      carolId = carol.userId;
      await conversation(page, carolId).waitFor(WAIT);
      assert.match(await conversation(page, carolId).innerText(), /carol.*online/s);
    }
    await conversation(page, carolId).waitFor({ state: "detached", ...WAIT });

    // A group with bob (GROUP_CREATE), and a message encrypted for each member.
    await page.getByText("Groups and history").click();
    await page.getByLabel("New group").fill("team");
    await page.getByLabel("Members").fill("bob");
    await page.getByRole("button", { name: "Create group" }).click();
    const created = await bob.next("GROUP_EVENT");
    const groupId = String((created.payload["group"] as { group_id: string }).group_id);
    await page.locator("#conversation-title", { hasText: "# team" }).waitFor(WAIT);
    await box.fill("hello team");
    await box.press("Enter");
    const groupDm = await bob.nextDm(aliceId);
    assert.match(groupDm.text, /hello team$/);
    assert.equal(groupDm.frame.payload["group_id"], groupId);

    // alice blocks bob (a BLOCKS_SET signed in the page): the servers refuse bob's DMs.
    await conversation(page, bob.userId).click();
    await page.getByRole("button", { name: "Block" }).click();
    await page.getByRole("button", { name: "Unblock" }).waitFor(WAIT);
    await bob.dm(alice, "are you there?");
    const refused = await bob.nextError("BLOCKED");
    assert.match(String(refused.payload["detail"]), /alice has blocked you/);
    await page.getByRole("button", { name: "Unblock" }).click();
    await page.getByRole("button", { name: "Block" }).waitFor(WAIT);

    await page.getByText("Groups and history").click(); // closes it again

    // The main screen, for a person to look at.
    const shots = await Deno.makeTempDir({ prefix: "socp_web_screenshots_" });
    await page.screenshot({ path: join(shots, "main.png") });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(shots, "phone.png") });
    await page.setViewportSize({ width: 1280, height: 800 });
    console.log(`web client screenshots: ${join(shots, "main.png")} ${join(shots, "phone.png")}`);

    // Server A goes away: the page reconnects through B (from the ACK's group), logging in
    // again with the kept auth key, and messages keep flowing.
    await a.kill();
    await page.locator("#status", { hasText: `Connected to ${b.url}` }).waitFor(WAIT);
    await bob.dm(alice, "still here?");
    await page.locator("#messages li.msg-in", { hasText: "still here?" }).waitFor(WAIT);

    // Another server (another key) now answers at A's URL: logging in there is refused loudly.
    await using impostor = await startServer({ port: a.port, serverKey: "server2" });
    assert.notEqual(impostor.pubkey, a.pubkey);
    await page.reload();
    await page.waitForSelector("body[data-ready=true]", WAIT);
    await login(page, "alice", PASSWORD);
    const alarm = page.getByRole("alert").filter({ hasText: "Server key changed" });
    await alarm.waitFor(WAIT);
    assert.match(await alarm.innerText(), /without a valid signature of its pinned key/);
    assert.ok(await page.locator("#chat-view").isHidden(), "no session with the impostor");
    await page.screenshot({ path: join(shots, "server-key-changed.png") });
    console.log(`web client key-change screenshot: ${join(shots, "server-key-changed.png")}`);

    assert.deepEqual(problems, []);
  },
});

async function expectFocused(page: Page, id: string): Promise<void> {
  const focused = await page.evaluate("document.activeElement ? document.activeElement.id : ''");
  assert.equal(focused, id, "focus moves to the message box");
}

Deno.test({
  name: "the web client in Chromium creates an identity, registers it, and logs back in to it",
  // See the test above: playwright-core's pipes close after the browser exits.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using server = await startServer();
    await using browser = await launchChromium();
    const page = await browser.context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${server.port}/`);
    await page.waitForSelector("body[data-ready=true]", WAIT);

    // Keyboard only: labels name the fields, Tab moves through them, Enter submits.
    await page.getByLabel("Username", { exact: true }).nth(1).focus();
    await page.keyboard.type("webby");
    await page.keyboard.press("Tab");
    await page.keyboard.type("Web Person");
    await page.keyboard.press("Tab");
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press("Tab");
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press("Enter");
    // An RSA-4096 key made in the page, REGISTER with seq and record_sig, sealed with scrypt.
    await page.locator("#chat-view").waitFor({ state: "visible", ...WAIT });
    assert.match(await page.locator("#me-name").innerText(), /Web Person \(webby\)/);
    const rows = await waitForAccounts(server, "webby", (r) => r.length === 1, "webby listed");

    // PRESENCE_SINCE_REQUEST from the page: the answer shows as a notice.
    await page.getByText("Groups and history").click();
    await page.getByRole("button", { name: "Who was online in the last hour?" }).click();
    await page.locator(".notice", { hasText: /online in the last 3600 s/ }).waitFor(WAIT);
    const userId = rows[0]!.user_id;

    await page.getByRole("button", { name: "Log out" }).click();
    await page.locator("#login-view").waitFor({ state: "visible", ...WAIT });
    await login(page, "webby", "not the password");
    await page.getByRole("alert").filter({ hasText: /password/i }).waitFor(WAIT);
    await login(page, "webby", PASSWORD);
    await page.locator("#chat-view").waitFor({ state: "visible", ...WAIT });
    const me = await page.evaluate("globalThis.socpState.me.userId");
    assert.equal(me, userId, "the same identity, its key unsealed from the account");
    assert.deepEqual(problems, []);
  },
});
