/**
 * Tests of session.ts: frames are routed to the feature modules.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connected } from "./_test_util.ts";

Deno.test("ERROR frames become error events; unknown frame types are ignored quietly", async () => {
  await using h = await connected();
  await h.server.send("FANCY_NEW_THING", { x: 1 });
  await h.server.send("ERROR", { code: "SOMETHING_ODD", detail: "strange" });
  const err = await h.events.wait("error");
  assert.deepEqual(err, {
    event: "error",
    code: "SOMETHING_ODD",
    detail: "strange",
    source: "server",
  });
  assert.deepEqual(h.events.of("warn").length, 0);
});
