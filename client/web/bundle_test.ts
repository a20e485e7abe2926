import assert from "node:assert/strict";
import { buildWebBundle, bundleProblems, OUTPUT, ROOT } from "./build.ts";

Deno.test("the committed app.bundle.js is what `deno task web` builds from the sources", async () => {
  const committed = await Deno.readTextFile(new URL(OUTPUT, ROOT));
  const fresh = await buildWebBundle();
  // assert.equal would print two 200 KB texts: say where they differ instead.
  if (committed !== fresh) {
    const a = committed.split("\n");
    const b = fresh.split("\n");
    const line = a.findIndex((text, i) => text !== b[i]);
    assert.fail(
      `${OUTPUT} is stale: run \`deno task web\` and commit it (first difference at line ${
        line + 1
      }: committed ${JSON.stringify(a[line])}, built ${JSON.stringify(b[line])})`,
    );
  }
});

Deno.test("the web bundle imports nothing a browser cannot load (no node: or Deno-only modules)", async () => {
  const committed = await Deno.readTextFile(new URL(OUTPUT, ROOT));
  assert.deepEqual(bundleProblems(committed), []);
  assert.deepEqual(bundleProblems('import { join } from "node:path";\nexport {};'), [
    'the bundle imports "node:path", which a browser cannot load',
  ]);
});
