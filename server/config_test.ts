import assert from "node:assert/strict";
import { ConfigError, parseServerArgs } from "./config.ts";

Deno.test("`parseServerArgs()` gives the stated defaults", () => {
  const { config, help, printIdentity } = parseServerArgs([], {});
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.port, 8765);
  assert.equal(config.dataDir, "data");
  assert.equal(config.maxUserFrameBytes, 65_536);
  assert.equal(config.heartbeatMs, 15_000);
  assert.equal(config.deadAfterMs, 45_000);
  assert.equal(config.loginAttempts, 3);
  assert.equal(config.loginBlockMs, 60_000);
  assert.equal(config.idleTimeoutMs, 0);
  assert.equal(help, false);
  assert.equal(printIdentity, false);
});

Deno.test("`parseServerArgs()` reads SOCP_HOST, SOCP_PORT and SOCP_DATA_DIR, flags win", () => {
  const env = { SOCP_HOST: "0.0.0.0", SOCP_PORT: "9000", SOCP_DATA_DIR: "/tmp/x" };
  const fromEnv = parseServerArgs([], env).config;
  assert.equal(fromEnv.host, "0.0.0.0");
  assert.equal(fromEnv.port, 9000);
  assert.equal(fromEnv.dataDir, "/tmp/x");
  assert.equal(fromEnv.advertiseHost, "127.0.0.1");
  const fromFlags = parseServerArgs(["--port", "0", "--login-block-seconds", "5"], env).config;
  assert.equal(fromFlags.port, 0);
  assert.equal(fromFlags.loginBlockMs, 5000);
});

Deno.test("`parseServerArgs()` reads --register-rate, 10 per hour by default", () => {
  assert.equal(parseServerArgs([], {}).config.registerPerHour, 10);
  assert.equal(parseServerArgs(["--register-rate", "3"], {}).config.registerPerHour, 3);
  assert.throws(() => parseServerArgs(["--register-rate", "0"], {}), /--register-rate/);
});

Deno.test("`parseServerArgs()` rejects bad values with a message naming the option", () => {
  assert.throws(() => parseServerArgs(["--port", "http"], {}), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /--port/);
    return true;
  });
  assert.throws(() => parseServerArgs(["--port", "70000"], {}), ConfigError);
  assert.throws(() => parseServerArgs(["--no-such-flag"], {}), ConfigError);
  assert.throws(() => parseServerArgs(["--log-level", "loud"], {}), /log-level/);
});

Deno.test("`parseServerArgs()` names a mistyped flag in one line and suggests the right one", () => {
  const messageOf = (args: string[]): string => {
    try {
      parseServerArgs(args, {});
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error.message;
    }
    throw new Error(`accepted ${args.join(" ")}`);
  };
  assert.equal(messageOf(["--prot", "8000"]), 'Unknown option "--prot"; did you mean "--port"?');
  assert.equal(messageOf(["--no-such-flag"]), 'Unknown option "--no-such-flag"');
  assert.equal(messageOf(["--data-dir"]), "Option --data-dir needs a value");
  assert.equal(messageOf(["extra"]), 'Unexpected argument "extra"');
});

Deno.test("`parseServerArgs()` reads --log-format and SOCP_LOG_FORMAT (default text)", () => {
  assert.equal(parseServerArgs([], {}).config.logFormat, "text");
  assert.equal(parseServerArgs([], { SOCP_LOG_FORMAT: "json" }).config.logFormat, "json");
  const flag = parseServerArgs(["--log-format", "text"], { SOCP_LOG_FORMAT: "json" });
  assert.equal(flag.config.logFormat, "text");
  assert.throws(() => parseServerArgs(["--log-format", "xml"], {}), ConfigError);
});

Deno.test("`parseServerArgs()` reads --metrics-listen host:port, [v6]:port and SOCP_METRICS_LISTEN", () => {
  assert.equal(parseServerArgs([], {}).config.metricsListen, undefined);
  assert.deepEqual(
    parseServerArgs(["--metrics-listen", "127.0.0.1:9464"], {}).config.metricsListen,
    {
      hostname: "127.0.0.1",
      port: 9464,
    },
  );
  assert.deepEqual(parseServerArgs(["--metrics-listen", "[::1]:0"], {}).config.metricsListen, {
    hostname: "::1",
    port: 0,
  });
  assert.deepEqual(
    parseServerArgs([], { SOCP_METRICS_LISTEN: "0.0.0.0:9100" }).config.metricsListen,
    { hostname: "0.0.0.0", port: 9100 },
  );
  for (const bad of ["9464", "host:", ":9464", "h:70000", "::1:80", "a b:1"]) {
    assert.throws(
      () => parseServerArgs(["--metrics-listen", bad], {}),
      (error: unknown) => error instanceof ConfigError && /host:port/.test(error.message),
      bad,
    );
  }
});

Deno.test("`parseServerArgs()` refuses a frame limit too small for a USER_HELLO or REGISTER", () => {
  assert.throws(
    () => parseServerArgs(["--max-frame-bytes", "2048"], {}),
    /--max-frame-bytes must be an integer ≥ 8192, got "2048"/,
  );
  assert.equal(parseServerArgs(["--max-frame-bytes", "8192"], {}).config.maxUserFrameBytes, 8192);
});
