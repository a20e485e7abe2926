/**
 * The terminal client as a person uses it: `socp client` runs in a tmux pane (a real pseudo-
 * terminal, raw mode, the line editor) while another client sends it messages. The test types
 * keys with `tmux send-keys` and reads the screen with `tmux capture-pane`. It fails without
 * tmux (.ci/run installs it).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  eventually,
  onlineEvent,
  readyClient,
  startServer,
  TIMEOUTS,
  withTempDir,
  writeClientConfig,
} from "./support/mod.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));

/** A tmux server of its own (`-L`), so the test never touches the user's sessions. */
class Tmux implements AsyncDisposable {
  readonly socket = `socp-test-${crypto.randomUUID().slice(0, 8)}`;

  async run(...args: string[]): Promise<string> {
    const out = await new Deno.Command("tmux", { args: ["-L", this.socket, ...args] }).output();
    if (!out.success) {
      throw new Error(`tmux ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return new TextDecoder().decode(out.stdout);
  }

  /** Starts `command` in a detached 100×24 session named `name`. */
  async start(name: string, command: string[], env: Record<string, string>): Promise<void> {
    const exports = Object.entries(env).map(([k, v]) => `${k}='${v}'`).join(" ");
    const line = command.map((w) => `'${w}'`).join(" ");
    await this.run(
      "new-session",
      "-d",
      "-s",
      name,
      "-x",
      "100",
      "-y",
      "24",
      // The suite may run with NO_COLOR set (CI does): only `env` decides it here.
      `cd '${REPO}' && env -u NO_COLOR ${exports} ${line}; sleep 30`,
    );
  }

  /** Types keys (tmux key names such as `Enter`, `Tab`, `Up`, or literal text with `-l`). */
  async keys(name: string, ...keys: string[]): Promise<void> {
    await this.run("send-keys", "-t", name, ...keys);
  }

  async type(name: string, text: string): Promise<void> {
    await this.run("send-keys", "-t", name, "-l", text);
  }

  /** The screen's text (`escapes`: with the colour escape sequences). */
  screen(name: string, escapes = false): Promise<string> {
    return this.run("capture-pane", "-p", ...(escapes ? ["-e"] : []), "-t", name);
  }

  /** Waits until the screen matches. */
  async until(name: string, pattern: RegExp, what: string): Promise<string> {
    return await eventually(
      async () => {
        const text = await this.screen(name);
        return pattern.test(text) ? text : undefined;
      },
      { what: `${what} on the screen`, timeoutMs: TIMEOUTS.event, intervalMs: 100 },
    );
  }

  async cursor(name: string): Promise<{ x: number; line: string }> {
    const [x, y] = (await this.run("display", "-p", "-t", name, "#{cursor_x} #{cursor_y}"))
      .trim().split(" ").map(Number) as [number, number];
    const line = (await this.screen(name)).split("\n")[y] ?? "";
    return { x, line };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.run("kill-server").catch(() => {});
  }
}

const lastLine = (screen: string): string => screen.trimEnd().split("\n").at(-1) ?? "";

Deno.test({
  name: "socp client in a terminal: completion, history, colours, no echo, redraw mid-line",
  async fn() {
    await withTempDir("socp_test_tmux_", async (dir) => {
      await using server = await startServer();
      const alice = await writeClientConfig(dir, "alice", "user0");
      const bob = await writeClientConfig(dir, "bob", "user1");
      await using bobClient = await readyClient(server.url, bob.path);
      await using tmux = new Tmux();
      const client = [Deno.execPath(), "run", "--allow-all", "main.ts", "client", alice.path];
      await tmux.start("alice", [...client, "--server", server.url], {
        TERM: "xterm-256color",
        HOME: dir,
      });
      await tmux.until("alice", /\[presence\] bob \(\w+\) is online/, "bob online");
      await bobClient.waitFor(onlineEvent(alice));

      // Tab completes the command and the name; the message line replaces the echo.
      await tmux.type("alice", "/te");
      await tmux.keys("alice", "Tab");
      await tmux.type("alice", "bo");
      await tmux.keys("alice", "Tab");
      await tmux.until("alice", /^> \/tell bob\s*$/m, "the completed line"); // tmux trims the space
      await tmux.type("alice", "hi bob");
      await tmux.keys("alice", "Enter");
      assert.equal((await bobClient.waitFor("dm")).text, "hi bob");
      let screen = await tmux.until("alice", /^\d\d:\d\d me → bob: hi bob$/m, "alice's own line");
      assert.ok(!screen.includes("> /tell bob hi bob"), "no echo of the command");

      // A message arriving mid-line is printed above; the line and cursor stay.
      await tmux.type("alice", "/all half typed");
      await tmux.keys("alice", "Left", "Left", "Left", "Left", "Left", "Left");
      await bobClient.line("/tell alice ping");
      screen = await tmux.until("alice", /bob \(\w+\) → me: ping/, "bob's message");
      assert.equal(lastLine(screen), "> /all half typed");
      const { x } = await tmux.cursor("alice");
      assert.equal(x, "> /all half".length, "the cursor is where it was");
      // ...and colours: bob's name in his colour, the time dimmed.
      const coloured = await tmux.screen("alice", true);
      // deno-lint-ignore no-control-regex
      assert.match(coloured, /\x1b\[[0-9;]*m\d\d:\d\d/, "a styled time");
      // deno-lint-ignore no-control-regex
      assert.match(coloured, /\x1b\[(3|9)\dmbob\x1b/, "bob in colour");

      // Editing at the cursor, then ↑ brings back what was sent.
      await tmux.keys("alice", "C-a", "C-k");
      await tmux.type("alice", "/lsit");
      await tmux.keys("alice", "Enter");
      await tmux.until("alice", /did you mean \/list\?/, "the suggestion");
      await tmux.keys("alice", "Up", "Up");
      await tmux.until("alice", /^> \/tell bob hi bob$/m, "the history");
      await tmux.keys("alice", "C-u");
      await tmux.type("alice", "/quit");
      await tmux.keys("alice", "Enter");
      await eventually(
        () =>
          Deno.readTextFile(join(dir, "alice.input_history")).then((t) =>
            t.includes("/quit") ? t : undefined
          ),
        { what: "the input history file" },
      );

      // Again, with NO_COLOR: the conversation so far is shown, without colours.
      await tmux.start("plain", [...client, "--server", server.url], {
        TERM: "xterm-256color",
        NO_COLOR: "1",
      });
      screen = await tmux.until("plain", /\[ready\] connected as alice/, "the second run");
      assert.match(screen, /kept on this device/);
      assert.match(screen, /^\d\d:\d\d me → bob: hi bob$/m);
      assert.match(screen, /^\d\d:\d\d bob \(\w+\) → me: ping$/m);
      const plain = await tmux.screen("plain", true);
      // deno-lint-ignore no-control-regex
      assert.doesNotMatch(plain, /\x1b\[(3|9)\dm/, "no colour with NO_COLOR");
      await tmux.type("plain", "/quit");
      await tmux.keys("plain", "Enter");
    });
  },
});
