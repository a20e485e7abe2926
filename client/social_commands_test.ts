/**
 * Tests of the social command specs in commands.ts: each command reaches the session with its
 * arguments parsed, and mistakes become error events with the usage.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type CommandContext,
  type CommandSession,
  defaultCommands,
  runCommandLine,
  type SocialSession,
} from "./commands.ts";
import type { ClientEvent } from "./events.ts";
import type { GroupCommand } from "./groups.ts";

function fake(): { ctx: CommandContext; calls: unknown[][]; events: ClientEvent[] } {
  const calls: unknown[][] = [];
  const events: ClientEvent[] = [];
  const record = (...call: unknown[]): Promise<void> => {
    calls.push(call);
    return Promise.resolve();
  };
  const social: SocialSession = {
    whoElse: () => {
      calls.push(["whoelse"]);
      return Promise.resolve([{ user_id: "b", display_name: "bob" }]);
    },
    whoElseSince: (seconds) => {
      calls.push(["whoelsesince", seconds]);
      return Promise.resolve([]);
    },
    blockList: () => {
      calls.push(["blocks"]);
      return Promise.resolve([]);
    },
    block: (user) => record("block", user),
    unblock: (user) => record("unblock", user),
    broadcast: (text) => record("broadcast", text),
    sendRandom: (text) => record("random", text),
    group: (command: GroupCommand) => record("group", command),
    startPrivate: (user) => record("startprivate", user),
    acceptPrivate: (user) => record("accept", user),
    sendPrivate: (user, text) => record("private", user, text),
    stopPrivate: (user) => record("stopprivate", user),
  };
  const session = { social: () => social } as unknown as CommandSession;
  const ctx: CommandContext = {
    session,
    emit: (e) => events.push(e),
    quit: () => {},
    signal: new AbortController().signal,
    commands: defaultCommands(),
  };
  return { ctx, calls, events };
}

Deno.test("the social commands reach the session with their arguments", async () => {
  const { ctx, calls, events } = fake();
  for (
    const line of [
      "/whoelse",
      "/whoelsesince 90",
      "/block mallory",
      "/unblock mallory",
      "/blocks",
      "/broadcast hello  all",
      "/random guess who",
      "/group create team bob carol -- first words",
      "/g team hi there",
      "/group members team",
      "/startprivate bob",
      "/accept alice",
      "/private bob just us",
      "/stopprivate bob",
    ]
  ) await runCommandLine(ctx, line);
  assert.deepEqual(events.filter((e) => e.event === "error"), []);
  assert.deepEqual(calls, [
    ["whoelse"],
    ["whoelsesince", 90],
    ["block", "mallory"],
    ["unblock", "mallory"],
    ["blocks"],
    ["broadcast", "hello  all"],
    ["random", "guess who"],
    ["group", { action: "create", name: "team", users: ["bob", "carol"], first: "first words" }],
    ["group", { action: "send", name: "team", text: "hi there" }],
    ["group", { action: "members", name: "team" }],
    ["startprivate", "bob"],
    ["accept", "alice"],
    ["private", "bob", "just us"],
    ["stopprivate", "bob"],
  ]);
  assert.deepEqual(events.map((e) => e.event), ["whoelse", "whoelsesince", "blocks"]);
});

Deno.test("the social commands turn mistakes into error events with the usage", async () => {
  const { ctx, calls, events } = fake();
  await runCommandLine(ctx, "/whoelsesince soon");
  await runCommandLine(ctx, "/whoelsesince");
  await runCommandLine(ctx, "/block");
  await runCommandLine(ctx, "/group create team");
  await runCommandLine(ctx, "/private bob");
  const details = events.map((e) => (e.event === "error" ? e.detail : ""));
  assert.match(details[0]!, /"soon" is not a number of seconds/);
  assert.match(details[1]!, /Missing <seconds>. Usage: \/whoelsesince <seconds>/);
  assert.match(details[2]!, /Missing <user>. Usage: \/block <user>/);
  assert.match(details[3]!, /Usage: \/group create <name> <user>/);
  assert.match(details[4]!, /Missing <text>/);
  assert.deepEqual(calls, []);
  // /group alone is a valid command: it shows the subcommands (the session prints them).
  await runCommandLine(ctx, "/group");
  assert.deepEqual(calls, [["group", { action: "help" }]]);
});
