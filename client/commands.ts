/**
 * The slash commands. Each command is one {@linkcode CommandSpec} (name, parameters, help and
 * handler) in a {@linkcode CommandTable}, so new commands are added by registering another
 * spec. Parsing and usage messages are generic.
 *
 * @module
 */

import type { EventSink, ListedAccount, ListedUser, NamedUser, SeenUser } from "./events.ts";
import { didYouMean } from "./did_you_mean.ts";
import { CommandError, ServerError } from "./errors.ts";
import { type GroupCommand, parseGroupCommand } from "./groups.ts";
import { parseSeconds } from "./presence_history.ts";

/**
 * The social commands of a session (`/whoelse`, `/block`, `/broadcast`, `/random`, `/group`,
 * private chats; implemented by `ClientSession`).
 */
export interface SocialSession {
  /** The other users online now. */
  whoElse(): Promise<NamedUser[]>;
  /** Everyone online at any moment of the last `seconds`. */
  whoElseSince(seconds: number): Promise<SeenUser[]>;
  /** The users this user blocked. */
  blockList(): Promise<NamedUser[]>;
  /** Blocks a user. */
  block(user: string): Promise<void>;
  /** Unblocks a user. */
  unblock(user: string): Promise<void>;
  /** `/all`, then says how many refused it. */
  broadcast(text: string): Promise<void>;
  /** A DM to one random other online user. */
  sendRandom(text: string): Promise<void>;
  /** A `/group` command. */
  group(command: GroupCommand): Promise<void>;
  /** Asks a user for a peer-to-peer private chat. */
  startPrivate(user: string): Promise<void>;
  /** Accepts a user's private-chat request (connects directly). */
  acceptPrivate(user: string): Promise<void>;
  /** Sends over a private chat's direct link. */
  sendPrivate(user: string, text: string): Promise<void>;
  /** Ends a private chat. */
  stopPrivate(user: string): Promise<void>;
}

/** What commands may ask of the client (implemented by `ClientApp`). */
export interface CommandSession {
  /** Refreshes and returns the online users. */
  list(): Promise<ListedUser[]>;
  /** Sends a DM. */
  sendDirect(target: string, text: string): Promise<void>;
  /** Sends a public message. */
  sendPublic(text: string): Promise<void>;
  /** Sends a file to a user or `public`. */
  sendFile(target: string, path: string, signal?: AbortSignal): Promise<void>;
  /** Registers the connected identity as an account (asks for the password). */
  register(username: string): Promise<void>;
  /** Logs in to an account on a new connection (asks for the password). */
  login(username?: string): Promise<void>;
  /** Ends the session; the program keeps running. */
  logout(): Promise<void>;
  /** Changes the account password (asks for the old and the new one). */
  passwd(): Promise<void>;
  /** Deletes the account everywhere (asks for the password). */
  deleteAccount(): Promise<void>;
  /** Account names matching a glob or /regex/. */
  accounts(pattern: string): Promise<ListedAccount[]>;
  /** Changes the display name (presence everywhere, and the config). */
  nick(name: string): Promise<void>;
  /** Shows the messages kept on this device: of one conversation, or the latest of all. */
  history(target?: string): Promise<void>;
  /** The social commands of the current session; throws CommandError when logged out. */
  social(): SocialSession;
}

/** What a command handler gets. */
export interface CommandContext {
  /** The session. */
  session: CommandSession;
  /** Reports events. */
  emit: EventSink;
  /** Asks the client to quit (after the commands in progress). */
  quit(): void;
  /** Aborted when the client quits. */
  signal: AbortSignal;
  /** The table (for `/help`). */
  commands: CommandTable;
}

/** One parameter of a command. */
export interface CommandParam {
  /** Name shown in the usage, e.g. `user` for `<user>`. */
  name: string;
  /** Takes the rest of the line verbatim (last parameter only). */
  rest?: boolean;
  /** May be left out. */
  optional?: boolean;
  /**
   * Where Tab completion takes candidates from (`user`, `public`, `group`, `command`...; see
   * completion.ts); by default inferred from `name`.
   */
  complete?: readonly string[];
}

/** One command. */
export interface CommandSpec {
  /** Name without the slash. */
  name: string;
  /** Other names. */
  aliases?: readonly string[];
  /** Parameters, in order. */
  params: readonly CommandParam[];
  /** One-line description. */
  help: string;
  /** Runs the command with its arguments by parameter name. */
  run(ctx: CommandContext, args: Readonly<Record<string, string>>): Promise<void> | void;
}

/**
 * The usage line of a command.
 *
 * @example
 * ```ts
 * import { defaultCommands, usageOf } from "./commands.ts";
 * console.assert(usageOf(defaultCommands().get("tell")!) === "/tell <user> <text>");
 * ```
 */
export function usageOf(spec: CommandSpec): string {
  const params = spec.params.map((p) => (p.optional ? `[${p.name}]` : `<${p.name}>`));
  return [`/${spec.name}`, ...params].join(" ");
}

/** A parsed command line: the command name and the text after it. */
export interface ParsedLine {
  name: string;
  argText: string;
}

/**
 * Splits `/name rest...`. Returns undefined for a line that is not a command.
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./commands.ts";
 * console.assert(parseCommandLine("/tell bob hi there")?.argText === "bob hi there");
 * ```
 */
export function parseCommandLine(line: string): ParsedLine | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith("/")) return undefined;
  const match = /^\/(\S*)\s*([\s\S]*)$/.exec(trimmed)!;
  return { name: match[1]!.toLowerCase(), argText: match[2]! };
}

function unquote(text: string): string {
  const t = text.trim();
  if (t.length >= 2 && (t[0] === '"' || t[0] === "'") && t.at(-1) === t[0]) return t.slice(1, -1);
  return t;
}

/** Binds a command's arguments from the text after its name; throws CommandError with usage. */
export function bindArgs(spec: CommandSpec, argText: string): Record<string, string> {
  const args: Record<string, string> = {};
  let rest = argText.trimStart();
  for (const param of spec.params) {
    let value: string;
    if (param.rest) {
      value = param.name === "text" ? rest : unquote(rest);
      rest = "";
    } else {
      const m = /^"([^"]*)"\s*|^'([^']*)'\s*|^(\S+)\s*/.exec(rest);
      value = m ? (m[1] ?? m[2] ?? m[3] ?? "") : "";
      rest = m ? rest.slice(m[0].length) : "";
    }
    if (value.trim().length === 0) {
      if (param.optional) continue;
      throw new CommandError(`Missing <${param.name}>. Usage: ${usageOf(spec)}`);
    }
    args[param.name] = value;
  }
  if (rest.trim().length > 0) {
    throw new CommandError(`Too many arguments. Usage: ${usageOf(spec)}`);
  }
  return args;
}

/** The registered commands, by name and alias. */
export class CommandTable {
  #byName: Map<string, CommandSpec> = new Map();
  #specs: CommandSpec[] = [];

  /** Adds a command (replacing one of the same name). */
  register(spec: CommandSpec): this {
    for (const name of [spec.name, ...(spec.aliases ?? [])]) {
      this.#byName.set(name.toLowerCase(), spec);
    }
    this.#specs = this.#specs.filter((s) => s.name !== spec.name).concat(spec);
    return this;
  }
  /** The command with this name or alias. */
  get(name: string): CommandSpec | undefined {
    return this.#byName.get(name.toLowerCase());
  }
  /** Every command, in registration order. */
  list(): readonly CommandSpec[] {
    return this.#specs;
  }
}

/** The commands of SOCP v1.3 plus `/help` and `/quit`. */
export function defaultCommands(): CommandTable {
  return new CommandTable()
    .register({
      name: "list",
      params: [],
      help: "show who is online",
      async run(ctx): Promise<void> {
        ctx.emit({ event: "list", users: await ctx.session.list() });
      },
    })
    .register({
      name: "tell",
      aliases: ["msg", "dm"],
      params: [{ name: "user" }, { name: "text", rest: true }],
      help: "send an end-to-end encrypted direct message (user = id or display name)",
      async run(ctx, args): Promise<void> {
        await ctx.session.sendDirect(args["user"]!, args["text"]!);
      },
    })
    .register({
      name: "all",
      params: [{ name: "text", rest: true }],
      help: "send a message to everyone online (encrypted for each)",
      async run(ctx, args): Promise<void> {
        await ctx.session.sendPublic(args["text"]!);
      },
    })
    .register({
      name: "me",
      params: [{ name: "action", rest: true, complete: ["name"] }],
      help: "an action on the public channel: /me waves is shown as * alice waves " +
        "(/tell bob /me waves for a direct one)",
      async run(ctx, args): Promise<void> {
        await ctx.session.sendPublic(`/me ${args["action"]!}`);
      },
    })
    .register({
      name: "file",
      params: [{ name: "user|group|public" }, { name: "path", rest: true }],
      help:
        "send a file (up to 16 MiB) to a user, to a group's members, or to everyone with public",
      async run(ctx, args): Promise<void> {
        await ctx.session.sendFile(args["user|group|public"]!, args["path"]!, ctx.signal);
      },
    })
    .register({
      name: "register",
      params: [{ name: "username" }],
      help: "turn this identity into an account with a password (asked twice, not echoed)",
      async run(ctx, args): Promise<void> {
        await ctx.session.register(args["username"]!);
      },
    })
    .register({
      name: "login",
      params: [{ name: "username", optional: true }],
      help: "log in to an account (from any machine, through any server of the mesh)",
      async run(ctx, args): Promise<void> {
        await ctx.session.login(args["username"]);
      },
    })
    .register({
      name: "logout",
      params: [],
      help: "end the session and stay in the program",
      async run(ctx): Promise<void> {
        await ctx.session.logout();
      },
    })
    .register({
      name: "passwd",
      aliases: ["password"],
      params: [],
      help: "change the account password",
      async run(ctx): Promise<void> {
        await ctx.session.passwd();
      },
    })
    .register({
      name: "delete-account",
      params: [],
      help: "delete the account everywhere in the mesh; the name becomes free",
      async run(ctx): Promise<void> {
        await ctx.session.deleteAccount();
      },
    })
    .register({
      name: "accounts",
      params: [{ name: "pattern", rest: true, optional: true }],
      help: "list account names by glob (al*, b?b, [a-c]*) or /regex/ (default *)",
      async run(ctx, args): Promise<void> {
        const pattern = args["pattern"] ?? "*";
        const accounts = await ctx.session.accounts(pattern);
        ctx.emit({ event: "accounts", pattern, accounts });
      },
    })
    // Social commands (client/presence_history.ts, blocks.ts, broadcast.ts, random_message.ts,
    // groups.ts, private_chat.ts).
    .register({
      name: "whoelse",
      params: [],
      help: "show the other users online now",
      async run(ctx): Promise<void> {
        ctx.emit({ event: "whoelse", users: await ctx.session.social().whoElse() });
      },
    })
    .register({
      name: "whoelsesince",
      params: [{ name: "seconds" }],
      help: "show everyone online at any moment of the last <seconds>, including now",
      async run(ctx, args): Promise<void> {
        const seconds = parseSeconds(args["seconds"]!);
        const users = await ctx.session.social().whoElseSince(seconds);
        ctx.emit({ event: "whoelsesince", seconds, users });
      },
    })
    .register({
      name: "block",
      params: [{ name: "user" }],
      help: "block a user: no messages, files, group messages, private chats or presence from you",
      async run(ctx, args): Promise<void> {
        await ctx.session.social().block(args["user"]!);
      },
    })
    .register({
      name: "unblock",
      params: [{ name: "user" }],
      help: "take a user off your block list",
      async run(ctx, args): Promise<void> {
        await ctx.session.social().unblock(args["user"]!);
      },
    })
    .register({
      name: "blocks",
      params: [],
      help: "list the users you blocked",
      async run(ctx): Promise<void> {
        const blocked = await ctx.session.social().blockList();
        ctx.emit({ event: "blocks", action: "list", blocked });
      },
    })
    .register({
      name: "broadcast",
      params: [{ name: "text", rest: true }],
      help: "the same as /all, and says how many users could not receive it",
      async run(ctx, args): Promise<void> {
        await ctx.session.social().broadcast(args["text"]!);
      },
    })
    .register({
      name: "random",
      params: [{ name: "text", rest: true }],
      help: "send a direct message to one random other online user, and say who got it",
      async run(ctx, args): Promise<void> {
        await ctx.session.social().sendRandom(args["text"]!);
      },
    })
    .register({
      name: "group",
      params: [{ name: "create|send|list|members|add|leave|remove", optional: true }, {
        name: "arguments",
        rest: true,
        optional: true,
      }],
      help: "named group chats; /group alone shows the usage of each subcommand",
      async run(ctx, args): Promise<void> {
        const line = `${args["create|send|list|members|add|leave|remove"] ?? ""} ${
          args["arguments"] ?? ""
        }`;
        await ctx.session.social().group(parseGroupCommand(line));
      },
    })
    .register({
      name: "g",
      params: [{ name: "group" }, { name: "text", rest: true }],
      help: "send a message to a group (encrypted for each member)",
      async run(ctx, args): Promise<void> {
        await ctx.session.social().group({
          action: "send",
          name: args["group"]!,
          text: args["text"]!,
        });
      },
    })
    .register({
      name: "startprivate",
      params: [{ name: "user" }],
      help: "ask an online user for a private chat over a direct connection (no server between)",
      async run(ctx, args): Promise<void> {
        await ctx.session.social().startPrivate(args["user"]!);
      },
    })
    .register({
      name: "accept",
      params: [{ name: "user" }],
      help: "accept a user's private-chat request: connect to them directly",
      async run(ctx, args): Promise<void> {
        await ctx.session.social().acceptPrivate(args["user"]!);
      },
    })
    .register({
      name: "private",
      params: [{ name: "user" }, { name: "text", rest: true }],
      help: "send over the private chat's direct connection only, never through a server",
      async run(ctx, args): Promise<void> {
        await ctx.session.social().sendPrivate(args["user"]!, args["text"]!);
      },
    })
    .register({
      name: "stopprivate",
      params: [{ name: "user" }],
      help: "close a private chat (logging out or quitting closes them too)",
      async run(ctx, args): Promise<void> {
        await ctx.session.social().stopPrivate(args["user"]!);
      },
    })
    .register({
      name: "nick",
      params: [{ name: "name", rest: true }],
      help: "change your display name: everyone online sees it at once, and it is saved",
      async run(ctx, args): Promise<void> {
        await ctx.session.nick(args["name"]!);
      },
    })
    .register({
      name: "history",
      params: [{ name: "user|public", optional: true }],
      help: "show the messages kept on this device (of one conversation, or the latest)",
      async run(ctx, args): Promise<void> {
        await ctx.session.history(args["user|public"]);
      },
    })
    .register({
      name: "help",
      aliases: ["?"],
      params: [{ name: "command", optional: true }],
      help: "show the commands, or one with its other names",
      run(ctx, args): void {
        const wanted = args["command"]?.replace(/^\//, "");
        const specs = wanted ? [ctx.commands.get(wanted)] : ctx.commands.list();
        if (specs[0] === undefined) {
          throw new CommandError(unknownCommand(ctx.commands, wanted ?? ""));
        }
        for (const spec of specs) {
          if (!spec) continue;
          const also = spec.aliases?.length
            ? ` (also ${spec.aliases.map((a) => `/${a}`).join(", ")})`
            : "";
          ctx.emit({ event: "info", text: `${usageOf(spec)}${also}  ${spec.help}` });
        }
      },
    })
    .register({
      name: "quit",
      aliases: ["exit"],
      params: [],
      help: "leave",
      run(ctx): void {
        ctx.quit();
      },
    });
}

/** `Unknown command "/tel"; did you mean /tell? ...`, naming the nearest command if any. */
export function unknownCommand(commands: CommandTable, name: string): string {
  const known = commands.list().flatMap((spec) => [spec.name, ...(spec.aliases ?? [])]);
  const near = didYouMean(name, known.filter((n) => n !== "?"));
  return `Unknown command "/${name}"; ${
    near ? `did you mean /${near}? ` : ""
  }/help lists the commands`;
}

/**
 * Runs one input line: parses it, checks the arguments and calls the command. Every failure
 * becomes an `error` event; nothing throws.
 */
export async function runCommandLine(ctx: CommandContext, line: string): Promise<void> {
  if (line.trim().length === 0) return;
  try {
    const parsed = parseCommandLine(line);
    if (!parsed) {
      throw new CommandError(
        "Not a command; use /tell <user> <text> for a direct message or /all <text> for everyone (/help lists the commands)",
      );
    }
    const spec = ctx.commands.get(parsed.name);
    if (!spec) throw new CommandError(unknownCommand(ctx.commands, parsed.name));
    await spec.run(ctx, bindArgs(spec, parsed.argText));
  } catch (e) {
    if (e instanceof ServerError) {
      ctx.emit({ event: "error", code: e.code, detail: e.message, source: "server" });
      return;
    }
    const internal = !(e instanceof CommandError);
    ctx.emit({
      event: "error",
      code: internal ? "INTERNAL" : "COMMAND",
      detail: internal
        ? `Internal error: ${e instanceof Error ? e.message : String(e)}`
        : e.message,
      source: "client",
    });
  }
}
