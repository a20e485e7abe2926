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
