import assert from "node:assert/strict";
import { ERROR_CODES, KeyError, ProtocolError, SignatureError } from "./errors.ts";

Deno.test("`ERROR_CODES` lists the six codes every SOCP peer must parse", () => {
  for (const code of ["USER_NOT_FOUND", "INVALID_SIG", "BAD_KEY", "TIMEOUT", "UNKNOWN_TYPE"]) {
    assert.ok((ERROR_CODES as readonly string[]).includes(code), code);
  }
  assert.ok(ERROR_CODES.includes("NAME_IN_USE"));
});

Deno.test("`ERROR_CODES` lists the extra codes socp sends, once each", () => {
  for (const code of ["BAD_FRAME", "FRAME_TOO_LARGE", "RATE_LIMIT", "IDENTITY_MISMATCH"]) {
    assert.ok((ERROR_CODES as readonly string[]).includes(code), code);
  }
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
  for (const code of ERROR_CODES) assert.match(code, /^[A-Z_]+$/);
});

Deno.test("`ProtocolError` carries its code, name, message and cause", () => {
  const cause = new SyntaxError("Unexpected token");
  const error = new ProtocolError("BAD_FRAME", "Frame is not valid JSON", { cause });
  assert.ok(error instanceof Error);
  assert.ok(error instanceof ProtocolError);
  assert.equal(error.name, "ProtocolError");
  assert.equal(error.code, "BAD_FRAME");
  assert.equal(error.message, "Frame is not valid JSON");
  assert.equal(error.cause, cause);
  assert.match(String(error), /^ProtocolError: Frame is not valid JSON$/);
});

Deno.test("`ProtocolError` has no cause unless given one", () => {
  const error = new ProtocolError("FRAME_TOO_LARGE", "Too big");
  assert.equal(error.code, "FRAME_TOO_LARGE");
  assert.equal("cause" in error, false);
});

Deno.test("`SignatureError` sets its name and cause", () => {
  const cause = new Error("inner");
  const error = new SignatureError("Signature does not verify", { cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "SignatureError");
  assert.equal(error.message, "Signature does not verify");
  assert.equal(error.cause, cause);
});

Deno.test("`KeyError` sets its name and cause", () => {
  const cause = new Error("inner");
  const error = new KeyError("RSA key must be 4096 bits, got 2048", { cause });
  assert.ok(error instanceof Error);
  assert.ok(!(error instanceof SignatureError));
  assert.equal(error.name, "KeyError");
  assert.equal(error.message, "RSA key must be 4096 bits, got 2048");
  assert.equal(error.cause, cause);
});
