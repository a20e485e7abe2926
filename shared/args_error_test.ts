import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { argsErrorText } from "./args_error.ts";

const OPTIONS = {
  server: { type: "string" },
  port: { type: "string" },
  "data-dir": { type: "string" },
  json: { type: "boolean" },
} as const;

/** The text for the error `parseArgs` throws on `args`. */
function textFor(args: string[], allowPositionals = true): string {
  try {
    parseArgs({ args, options: OPTIONS, strict: true, allowPositionals });
  } catch (error) {
    return argsErrorText(error, Object.keys(OPTIONS));
  }
  throw new Error(`parseArgs accepted ${args.join(" ")}`);
}

Deno.test("`argsErrorText()` names an unknown option in one line, without parser advice", () => {
  const text = textFor(["me.json", "--no-such-flag"]);
  assert.equal(text, 'Unknown option "--no-such-flag"');
  assert.doesNotMatch(text, /positional|\n/);
  assert.equal(textFor(["-x"]), 'Unknown option "-x"');
});

Deno.test("`argsErrorText()` suggests the option closest to a mistyped one", () => {
  assert.equal(
    textFor(["--serverr", "ws://h"]),
    'Unknown option "--serverr"; did you mean "--server"?',
  );
  assert.equal(textFor(["--prot", "1"]), 'Unknown option "--prot"; did you mean "--port"?');
  assert.equal(textFor(["--data", "d"]), 'Unknown option "--data"; did you mean "--data-dir"?');
  assert.equal(textFor(["--verbose"]), 'Unknown option "--verbose"');
});

Deno.test("`argsErrorText()` explains missing, ambiguous and unwanted values", () => {
  assert.equal(textFor(["--port"]), "Option --port needs a value");
  assert.match(textFor(["--port", "--json"]), /^Option --port needs a value; write --port=<value>/);
  assert.equal(textFor(["--json=yes"]), "Option --json takes no value");
  assert.equal(textFor(["extra"], false), 'Unexpected argument "extra"');
});

Deno.test("`argsErrorText()` gives the first line of any other error", () => {
  assert.equal(argsErrorText(new RangeError("Bad\nmore")), "Bad");
  assert.equal(argsErrorText("plain"), "plain");
});
