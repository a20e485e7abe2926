/**
 * Server configuration from flags and environment, with stated defaults.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import type { LogFormat, LogLevel } from "./log.ts";
import { argsErrorText } from "../shared/mod.ts";

/** Everything a server needs to start. */
export interface ServerConfig {
  /** Address to listen on (`--host`, `SOCP_HOST`; default 127.0.0.1). */
  host: string;
  /** Port to listen on, 0 = chosen by the OS (`--port`, `SOCP_PORT`; default 8765). */
  port: number;
  /** Host other servers should dial (`--advertise-host`, `SOCP_ADVERTISE_HOST`; default host). */
  advertiseHost: string;
  /** Data directory (`--data-dir`, `SOCP_DATA_DIR`; default ./data). */
  dataDir: string;
  /** bootstrap.yaml path (`--bootstrap`, `SOCP_BOOTSTRAP`; default <data-dir>/bootstrap.yaml if present). */
  bootstrapPath: string | undefined;
  /** Largest frame from a user, bytes (default 65,536). */
  maxUserFrameBytes: number;
  /** Largest frame from a server, bytes (default 1 MiB). */
  maxServerFrameBytes: number;
  /** Largest file announced in FILE_START, bytes (default 16 MiB). */
  maxFileBytes: number;
  /** Frames per second per connection (default 1,000). */
  rate: number;
  /** Burst size per connection (default 2,000). */
  burst: number;
  /** Heartbeat interval, ms (default 15,000). */
  heartbeatMs: number;
  /** Silence after which a server link is dead, ms (default 45,000). */
  deadAfterMs: number;
  /** Failed logins before an account is blocked (default 3). */
  loginAttempts: number;
  /** How long a blocked account stays blocked, ms (default 60,000). */
  loginBlockMs: number;
  /**
   * Failed logins per account from all addresses together in 10 minutes before addresses that
   * never logged in to it are refused too (default 20).
   */
  accountFailureLimit: number;
  /**
   * `open`: any SOCP server may join through an introducer (presence and routing only);
   * `closed`: only servers listed in the bootstrap file (introducers and server group).
   */
  federation: "open" | "closed";
  /**
   * How keys are written to other implementations' servers and clients: absent = as each peer
   * writes them (learned from its hello); `der` or `pem` forces one for every non-socp peer.
   */
  keyEncoding?: "der" | "pem";
  /** REGISTER requests per hour per client address, also the burst (default 10). */
  registerPerHour: number;
  /** Idle session logout, ms; 0 = off (default off). */
  idleTimeoutMs: number;
  /** Offline queue cap per user (default 1,000 frames). */
  queueMaxFrames: number;
  /** Offline queue age cap, ms (default 7 days). */
  queueMaxAgeMs: number;
  /** Log level (default info). */
  logLevel: LogLevel;
  /** Log line format (`--log-format`, `SOCP_LOG_FORMAT`; default text). */
  logFormat: LogFormat;
  /**
   * A separate address for /metrics, /healthz and /readyz (`--metrics-listen`,
   * `SOCP_METRICS_LISTEN`); the main port then answers /metrics with 404 and keeps /healthz and
   * /readyz. Default: none (the main port serves all three).
   */
  metricsListen: ListenAddress | undefined;
}

/** A host and port to listen on. */
export interface ListenAddress {
  /** Address to bind. */
  hostname: string;
  /** Port, 0 = chosen by the OS. */
  port: number;
}

/** Thrown for a bad flag or environment value; the message says what to fix. */
export class ConfigError extends Error {
  /** Creates a config error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** Usage text of `socp server`. */
export const SERVER_USAGE = `Usage: socp server [options]

Options (environment variable in brackets):
  --host <addr>              listen address [SOCP_HOST] (default 127.0.0.1)
  --port <n>                 listen port, 0 = any free port [SOCP_PORT] (default 8765)
  --data-dir <dir>           keys and database [SOCP_DATA_DIR] (default ./data)
  --bootstrap <file>         bootstrap.yaml with introducers [SOCP_BOOTSTRAP]
                             (default <data-dir>/bootstrap.yaml when it exists)
  --advertise-host <addr>    address other servers dial [SOCP_ADVERTISE_HOST] (default --host)
  --max-frame-bytes <n>      largest user frame (default 65536, at least 8192)
  --max-server-frame-bytes <n> largest server frame (default 1048576)
  --max-file-bytes <n>       largest file transfer (default 16777216)
  --rate <n>                 frames per second per connection (default 1000)
  --burst <n>                burst per connection (default 2000)
  --heartbeat-ms <n>         heartbeat interval (default 15000)
  --dead-after-ms <n>        silence before a server link is dead (default 45000)
  --login-attempts <n>       failed logins before blocking (default 3)
  --login-block-seconds <n>  how long a blocked login stays blocked (default 60)
  --account-failure-limit <n> failed logins per account from all addresses in 10 minutes
                             before unknown addresses are refused too (default 20)
  --federation <open|closed> open: any SOCP server may join (presence and routing only);
                             closed: only servers in the bootstrap file (default open)
  --key-encoding <der|pem>   how keys are written to non-socp servers and clients (default:
                             as each one writes its own; pem = base64url of the PEM text)
  --register-rate <n>        registrations per hour per client address (default 10)
  --idle-timeout-seconds <n> log out idle sessions; 0 = never (default 0)
  --queue-max <n>            offline frames kept per user (default 20000)
  --queue-max-age-days <n>   offline messages expire after (default 7)
  --log-level <level>        debug | info | warn | error [SOCP_LOG_LEVEL] (default info)
  --log-format <text|json>   log lines as text or one JSON object per line [SOCP_LOG_FORMAT]
                             (default text)
  --metrics-listen <host:port> serve /metrics (and /healthz, /readyz) on this address; the
                             main port then answers /metrics with 404 [SOCP_METRICS_LISTEN]
                             (default: /metrics on the main port)
  --print-identity           print this server's id and public key, then exit
  -h, --help                 show this help`;

function intOption(name: string, raw: string | undefined, fallback: number, min = 0): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ConfigError(`Option --${name} must be an integer ≥ ${min}, got "${raw}"`);
  }
  return value;
}

/** Parsed `socp server` command line. */
export interface ServerArgs {
  /** The configuration. */
  config: ServerConfig;
  /** `--help` was given. */
  help: boolean;
  /** `--print-identity` was given. */
  printIdentity: boolean;
}

/**
 * Parses `socp server` arguments and environment. Throws {@linkcode ConfigError}.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "./config.ts";
 * const { config } = parseServerArgs(["--port", "0"], {});
 * console.assert(config.port === 0 && config.host === "127.0.0.1");
 * ```
 */
export function parseServerArgs(
  args: string[],
  env: Record<string, string | undefined>,
): ServerArgs {
  const options = {
    host: { type: "string" },
    port: { type: "string" },
    "data-dir": { type: "string" },
    bootstrap: { type: "string" },
    "advertise-host": { type: "string" },
    "max-frame-bytes": { type: "string" },
    "max-server-frame-bytes": { type: "string" },
    "max-file-bytes": { type: "string" },
    rate: { type: "string" },
    burst: { type: "string" },
    "heartbeat-ms": { type: "string" },
    "dead-after-ms": { type: "string" },
    "login-attempts": { type: "string" },
    "login-block-seconds": { type: "string" },
    "account-failure-limit": { type: "string" },
    federation: { type: "string" },
    "key-encoding": { type: "string" },
    "register-rate": { type: "string" },
    "idle-timeout-seconds": { type: "string" },
    "queue-max": { type: "string" },
    "queue-max-age-days": { type: "string" },
    "log-level": { type: "string" },
    "log-format": { type: "string" },
    "metrics-listen": { type: "string" },
    "print-identity": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  } as const;
  let values;
  try {
    ({ values } = parseArgs({ args, strict: true, allowPositionals: false, options }));
  } catch (cause) {
    throw new ConfigError(argsErrorText(cause, Object.keys(options)), { cause });
  }
  const host = values.host ?? env.SOCP_HOST ?? "127.0.0.1";
  const port = intOption("port", values.port ?? env.SOCP_PORT, 8765);
  if (port > 65535) throw new ConfigError(`Option --port must be at most 65535, got ${port}`);
  const dataDir = values["data-dir"] ?? env.SOCP_DATA_DIR ?? "data";
  const logLevel = values["log-level"] ?? env.SOCP_LOG_LEVEL ?? "info";
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new ConfigError(
      `Option --log-level must be debug, info, warn or error, got "${logLevel}"`,
    );
  }
  const logFormat = values["log-format"] ?? env.SOCP_LOG_FORMAT ?? "text";
  if (logFormat !== "text" && logFormat !== "json") {
    throw new ConfigError(`Option --log-format must be text or json, got "${logFormat}"`);
  }
  const metricsListenText = values["metrics-listen"] ?? env.SOCP_METRICS_LISTEN;
  const metricsListen = metricsListenText === undefined || metricsListenText === ""
    ? undefined
    : parseListenAddress("metrics-listen", metricsListenText);
  const federation = values.federation ?? env.SOCP_FEDERATION ?? "open";
  if (federation !== "open" && federation !== "closed") {
    throw new ConfigError(`Option --federation must be open or closed, got "${federation}"`);
  }
  const keyEncoding = values["key-encoding"] ?? env.SOCP_KEY_ENCODING;
  if (keyEncoding !== undefined && keyEncoding !== "der" && keyEncoding !== "pem") {
    throw new ConfigError(`Option --key-encoding must be der or pem, got "${keyEncoding}"`);
  }
  const advertise = values["advertise-host"] ?? env.SOCP_ADVERTISE_HOST ??
    (host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host);
  const config: ServerConfig = {
    host,
    port,
    advertiseHost: advertise,
    dataDir,
    bootstrapPath: values.bootstrap ?? env.SOCP_BOOTSTRAP ?? undefined,
    // Below 8 KiB a client could not say hello (a USER_HELLO with RSA-4096 keys is some 2.5 KB)
    // or register (REGISTER carries the sealed private key, some 5 KB).
    maxUserFrameBytes: intOption("max-frame-bytes", values["max-frame-bytes"], 65_536, 8192),
    maxServerFrameBytes: intOption(
      "max-server-frame-bytes",
      values["max-server-frame-bytes"],
      1 << 20,
      1024,
    ),
    maxFileBytes: intOption("max-file-bytes", values["max-file-bytes"], 16 << 20, 1),
    rate: intOption("rate", values.rate, 1000, 1),
    burst: intOption("burst", values.burst, 2000, 1),
    heartbeatMs: intOption("heartbeat-ms", values["heartbeat-ms"], 15_000, 10),
    deadAfterMs: intOption("dead-after-ms", values["dead-after-ms"], 45_000, 10),
    loginAttempts: intOption("login-attempts", values["login-attempts"], 3, 1),
    loginBlockMs: intOption("login-block-seconds", values["login-block-seconds"], 60) * 1000,
    accountFailureLimit: intOption(
      "account-failure-limit",
      values["account-failure-limit"],
      20,
      1,
    ),
    federation,
    ...(keyEncoding === undefined ? {} : { keyEncoding }),
    registerPerHour: intOption("register-rate", values["register-rate"], 10, 1),
    idleTimeoutMs: intOption("idle-timeout-seconds", values["idle-timeout-seconds"], 0) * 1000,
    queueMaxFrames: intOption("queue-max", values["queue-max"], 20_000, 1),
    queueMaxAgeMs: intOption("queue-max-age-days", values["queue-max-age-days"], 7, 1) *
      86_400_000,
    logLevel: logLevel as LogLevel,
    logFormat,
    metricsListen,
  };
  return { config, help: values.help ?? false, printIdentity: values["print-identity"] ?? false };
}

/**
 * Parses `host:port` (`[v6]:port` for IPv6) for option `--<name>`. Throws
 * {@linkcode ConfigError}.
 *
 * @example
 * ```ts
 * import { parseListenAddress } from "./config.ts";
 * const addr = parseListenAddress("metrics-listen", "127.0.0.1:9464");
 * console.assert(addr.hostname === "127.0.0.1" && addr.port === 9464);
 * console.assert(parseListenAddress("metrics-listen", "[::1]:0").hostname === "::1");
 * ```
 */
export function parseListenAddress(name: string, text: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:\[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  const hostname = match?.[1] ?? match?.[2];
  if (hostname === undefined || !(port <= 65535)) {
    throw new ConfigError(
      `Option --${name} must be host:port (e.g. 127.0.0.1:9464, [::1]:9464), got "${text}"`,
    );
  }
  return { hostname, port };
}

/** The default bootstrap path for a data dir. */
export function defaultBootstrapPath(dataDir: string): string {
  return join(dataDir, "bootstrap.yaml");
}
