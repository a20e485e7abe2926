import assert from "node:assert/strict";
import {
  bindArgs,
  type CommandContext,
  type CommandSession,
  defaultCommands,
  parseCommandLine,
  runCommandLine,
  usageOf,
} from "./commands.ts";
import type { ClientEvent, ErrorEvent } from "./events.ts";
import { CommandError, ServerError } from "./errors.ts";

function fake(): {
  ctx: CommandContext;
  calls: string[][];
  events: ClientEvent[];
  quit: () => boolean;
} {
  const calls: string[][] = [];
  const events: ClientEvent[] = [];
  let quit = false;
  const session: CommandSession = {
    list: () => {
      calls.push(["list"]);
      return Promise.resolve([{ user_id: "u1", display_name: "me", self: true }]);
    },
    sendDirect: (target, text) => {
      calls.push(["tell", target, text]);
      return Promise.resolve();
    },
    sendPublic: (text) => {
      calls.push(["all", text]);
      return Promise.resolve();
    },
    sendFile: (target, path) => {
      calls.push(["file", target, path]);
      if (path === "boom") return Promise.reject(new CommandError('File "boom" does not exist'));
      if (path === "bug") return Promise.reject(new TypeError("oops"));
      return Promise.resolve();
    },
    register: (username) => {
      calls.push(["register", username]);
      if (username === "taken") {
        return Promise.reject(
          new ServerError("NAME_IN_USE", 'The name "taken" is already taken'),
        );
      }
      return Promise.resolve();
    },
    login: (username) => {
      calls.push(["login", ...(username === undefined ? [] : [username])]);
      return Promise.resolve();
    },
    logout: () => {
      calls.push(["logout"]);
      return Promise.resolve();
    },
    passwd: () => {
      calls.push(["passwd"]);
      return Promise.resolve();
    },
    deleteAccount: () => {
      calls.push(["delete-account"]);
      return Promise.resolve();
    },
    accounts: (pattern) => {
      calls.push(["accounts", pattern]);
      if (pattern === "[a-") {
        return Promise.reject(
          new ServerError("BAD_REQUEST", 'Malformed pattern "[a-": "[" at 1 is never closed'),
        );
      }
      return Promise.resolve([{ username: "alice", user_id: "u1", online: true }]);
    },
    social: () => {
      throw new CommandError("no social commands in this fake (see social_commands_test.ts)");
    },
    nick: (name) => {
      calls.push(["nick", name]);
      return Promise.resolve();
    },
    history: (target) => {
      calls.push(["history", ...(target === undefined ? [] : [target])]);
      return Promise.resolve();
    },
  };
  const ctx: CommandContext = {
    session,
    emit: (e) => events.push(e),
    quit: () => (quit = true),
    signal: new AbortController().signal,
    commands: defaultCommands(),
  };
  return { ctx, calls, events, quit: () => quit };
}

function errors(events: ClientEvent[]): string[] {
  return events.filter((e): e is ErrorEvent => e.event === "error").map((e) => e.detail);
}

Deno.test("parseCommandLine() splits the name from the rest and ignores non-commands", () => {
  assert.deepEqual(parseCommandLine("  /Tell bob  hi  there "), {
    name: "tell",
    argText: "bob  hi  there",
  });
  assert.deepEqual(parseCommandLine("/list"), { name: "list", argText: "" });
  assert.equal(parseCommandLine("hello"), undefined);
});

Deno.test("usageOf() renders parameters", () => {
  const table = defaultCommands();
  assert.equal(usageOf(table.get("file")!), "/file <user|group|public> <path>");
  assert.equal(usageOf(table.get("all")!), "/all <text>");
  assert.equal(usageOf(table.get("help")!), "/help [command]");
});

Deno.test("bindArgs() keeps the text verbatim and unquotes words and paths", () => {
  const table = defaultCommands();
  assert.deepEqual(bindArgs(table.get("tell")!, "bob   two  spaces "), {
    user: "bob",
    text: "two  spaces ",
  });
  assert.deepEqual(bindArgs(table.get("tell")!, '"Bob Smith" hi'), {
    user: "Bob Smith",
    text: "hi",
  });
  assert.deepEqual(bindArgs(table.get("file")!, 'public "my file.txt"'), {
    "user|group|public": "public",
    path: "my file.txt",
  });
  assert.deepEqual(bindArgs(table.get("file")!, "bob my file.txt"), {
    "user|group|public": "bob",
    path: "my file.txt",
  });
  assert.throws(
    () => bindArgs(table.get("tell")!, "bob"),
    /Missing <text>\. Usage: \/tell <user> <text>/,
  );
  assert.throws(() => bindArgs(table.get("list")!, "extra"), /Too many arguments\. Usage: \/list/);
});

Deno.test("runCommandLine() dispatches the commands", async () => {
  const { ctx, calls, events, quit } = fake();
  await runCommandLine(ctx, "/tell bob hello there");
  await runCommandLine(ctx, "/all hi all");
  await runCommandLine(ctx, "/file public ./a.txt");
  await runCommandLine(ctx, "/msg carol alias works");
  await runCommandLine(ctx, "/list");
  await runCommandLine(ctx, "");
  assert.deepEqual(calls, [
    ["tell", "bob", "hello there"],
    ["all", "hi all"],
    ["file", "public", "./a.txt"],
    ["tell", "carol", "alias works"],
    ["list"],
  ]);
  assert.deepEqual(events, [{
    event: "list",
    users: [{ user_id: "u1", display_name: "me", self: true }],
  }]);
  assert.equal(quit(), false);
  await runCommandLine(ctx, "/quit");
  assert.equal(quit(), true);
});

Deno.test("runCommandLine() turns every mistake into an error event with usage", async () => {
  const { ctx, calls, events } = fake();
  await runCommandLine(ctx, "hello everyone");
  await runCommandLine(ctx, "/frobnicate now");
  await runCommandLine(ctx, "/tell");
  await runCommandLine(ctx, "/tell bob");
  await runCommandLine(ctx, "/all   ");
  await runCommandLine(ctx, "/file bob");
  await runCommandLine(ctx, "/file bob boom");
  await runCommandLine(ctx, "/file bob bug");
  const details = errors(events);
  assert.equal(details.length, 8);
  assert.match(details[0]!, /use \/tell <user> <text> .* or \/all <text>/);
  assert.match(details[1]!, /Unknown command "\/frobnicate"; \/help lists the commands/);
  assert.match(details[2]!, /Missing <user>\. Usage: \/tell <user> <text>/);
  assert.match(details[3]!, /Missing <text>\. Usage: \/tell <user> <text>/);
  assert.match(details[4]!, /Missing <text>\. Usage: \/all <text>/);
  assert.match(details[5]!, /Missing <path>\. Usage: \/file <user\|group\|public> <path>/);
  assert.equal(details[6], 'File "boom" does not exist');
  assert.match(details[7]!, /Internal error: oops/);
  assert.ok(events.every((e) => e.event !== "error" || e.source === "client"));
  assert.deepEqual(calls.map((c) => c[0]), ["file", "file"]);
});

Deno.test("/help lists every command, one info event each", async () => {
  const { ctx, events } = fake();
  await runCommandLine(ctx, "/help");
  const lines = events.map((e) => (e.event === "info" ? e.text : ""));
  assert.deepEqual(lines.map((l) => l.split(" ")[0]), [
    "/list",
    "/tell",
    "/all",
    "/me",
    "/file",
    "/register",
    "/login",
    "/logout",
    "/passwd",
    "/delete-account",
    "/accounts",
    "/whoelse",
    "/whoelsesince",
    "/block",
    "/unblock",
    "/blocks",
    "/broadcast",
    "/random",
    "/group",
    "/g",
    "/startprivate",
    "/accept",
    "/private",
    "/stopprivate",
    "/nick",
    "/history",
    "/help",
    "/quit",
  ]);
  // Every other name of a command is listed with it.
  assert.ok(lines.some((l) => l.startsWith("/tell <user> <text> (also /msg, /dm)  ")), lines[1]);
  assert.ok(lines.some((l) => l.startsWith("/passwd (also /password)  ")));
  assert.ok(lines.some((l) => l.startsWith("/help [command] (also /?)  ")));
  assert.ok(lines.some((l) => l.startsWith("/quit (also /exit)  ")));
  events.length = 0;
  await runCommandLine(ctx, "/help /tell");
  assert.equal(events.length, 1);
  await runCommandLine(ctx, "/help nope");
  assert.match(errors(events)[0]!, /Unknown command "\/nope"/);
});

Deno.test("runCommandLine() suggests the nearest command for a near miss", async () => {
  const { ctx, events } = fake();
  await runCommandLine(ctx, "/tel bob hi");
  await runCommandLine(ctx, "/lsit");
  await runCommandLine(ctx, "/accoun al*");
  await runCommandLine(ctx, "/frobnicate");
  await runCommandLine(ctx, "/help tel");
  const details = errors(events);
  assert.equal(details[0], 'Unknown command "/tel"; did you mean /tell? /help lists the commands');
  assert.match(details[1]!, /did you mean \/list\?/);
  assert.match(details[2]!, /did you mean \/accounts\?/);
  assert.equal(details[3], 'Unknown command "/frobnicate"; /help lists the commands');
  assert.match(details[4]!, /did you mean \/tell\?/);
});

Deno.test("/me sends an action to the public channel; /nick and /history reach the session", async () => {
  const { ctx, calls, events } = fake();
  await runCommandLine(ctx, "/me waves at everyone");
  await runCommandLine(ctx, "/nick Robert the Bold");
  await runCommandLine(ctx, "/history");
  await runCommandLine(ctx, "/history bob");
  await runCommandLine(ctx, "/me");
  assert.deepEqual(calls, [
    ["all", "/me waves at everyone"],
    ["nick", "Robert the Bold"],
    ["history"],
    ["history", "bob"],
  ]);
  assert.match(errors(events)[0]!, /Missing <action>\. Usage: \/me <action>/);
});

Deno.test("CommandTable accepts new commands", async () => {
  const { ctx, events } = fake();
  ctx.commands.register({
    name: "login",
    params: [{ name: "name" }],
    help: "log in",
    run: (c, args) => c.emit({ event: "info", text: `login ${args["name"]}` }),
  });
  await runCommandLine(ctx, "/LOGIN alice");
  assert.deepEqual(events, [{ event: "info", text: "login alice" }]);
});

Deno.test("runCommandLine() dispatches the account commands", async () => {
  const { ctx, calls, events } = fake();
  await runCommandLine(ctx, "/register alice");
  await runCommandLine(ctx, "/login Bob");
  await runCommandLine(ctx, "/login");
  await runCommandLine(ctx, "/logout");
  await runCommandLine(ctx, "/passwd");
  await runCommandLine(ctx, "/delete-account");
  await runCommandLine(ctx, "/accounts /^a.*$/");
  await runCommandLine(ctx, "/accounts");
  assert.deepEqual(calls, [
    ["register", "alice"],
    ["login", "Bob"],
    ["login"],
    ["logout"],
    ["passwd"],
    ["delete-account"],
    ["accounts", "/^a.*$/"],
    ["accounts", "*"],
  ]);
  assert.deepEqual(events.filter((e) => e.event === "accounts").map((e) => e.pattern), [
    "/^a.*$/",
    "*",
  ]);
  assert.deepEqual(errors(events), []);
});

Deno.test("runCommandLine() reports a server refusal with the server's code", async () => {
  const { ctx, events } = fake();
  await runCommandLine(ctx, "/register taken");
  await runCommandLine(ctx, "/accounts [a-");
  await runCommandLine(ctx, "/register");
  const errs = events.filter((e): e is ErrorEvent => e.event === "error");
  assert.deepEqual(errs.map((e) => [e.code, e.source]), [
    ["NAME_IN_USE", "server"],
    ["BAD_REQUEST", "server"],
    ["COMMAND", "client"],
  ]);
  assert.match(errs[1]!.detail, /Malformed pattern "\[a-"/);
  assert.match(errs[2]!.detail, /Missing <username>\. Usage: \/register <username>/);
});
