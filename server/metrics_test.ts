import assert from "node:assert/strict";
import {
  Counter,
  escapeLabelValue,
  formatValue,
  Histogram,
  MAX_SERIES,
  MetricsRegistry,
  ServerMetrics,
} from "./metrics.ts";

/** Sample lines (`name{labels} value`) of a text exposition, comments dropped. */
function samples(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    out.set(line.slice(0, space), line.slice(space + 1));
  }
  return out;
}

Deno.test("`escapeLabelValue()` escapes backslash, double quote and line feed only", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  assert.equal(escapeLabelValue("tab\there é"), "tab\there é");
});

Deno.test("`formatValue()` writes +Inf, -Inf, NaN and plain decimals", () => {
  assert.equal(formatValue(Infinity), "+Inf");
  assert.equal(formatValue(-Infinity), "-Inf");
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(3), "3");
  assert.equal(formatValue(0.0025), "0.0025");
});

Deno.test("`MetricsRegistry.render()` writes HELP and TYPE before samples, one family at a time", () => {
  const registry = new MetricsRegistry();
  const jobs = registry.counter("jobs_total", "Jobs done.\nSecond line \\ here.", ["kind"]);
  registry.counter("plain_total", "No labels.");
  jobs.inc({ kind: "b" });
  jobs.inc({ kind: "a" }, 2);
  jobs.inc({ kind: 'q"\n' });
  assert.equal(
    registry.render(),
    [
      "# HELP jobs_total Jobs done.\\nSecond line \\\\ here.",
      "# TYPE jobs_total counter",
      'jobs_total{kind="a"} 2',
      'jobs_total{kind="b"} 1',
      'jobs_total{kind="q\\"\\n"} 1',
      "# HELP plain_total No labels.",
      "# TYPE plain_total counter",
      "plain_total 0",
      "",
    ].join("\n"),
  );
});

Deno.test("`MetricsRegistry` refuses duplicate names and invalid metric or label names", () => {
  const registry = new MetricsRegistry();
  registry.counter("a_total", "A.");
  assert.throws(() => registry.counter("a_total", "Again."), TypeError);
  assert.throws(() => registry.counter("bad-name", "B."), TypeError);
  assert.throws(() => registry.counter("c_total", "C.", ["le"]), TypeError);
  assert.throws(() => registry.counter("d_total", "D.", ["__x"]), TypeError);
  assert.throws(() => new Counter("e_total", "E.").inc({}, -1), RangeError);
});

Deno.test("`Histogram` renders cumulative buckets, +Inf, sum and count", () => {
  const registry = new MetricsRegistry();
  const h = registry.histogram("wait_seconds", "Waits.", [0.1, 1]);
  for (const v of [0.05, 0.1, 0.5, 3]) h.observe(v);
  const text = registry.render();
  assert.match(text, /# TYPE wait_seconds histogram\n/);
  const s = samples(text);
  assert.equal(s.get('wait_seconds_bucket{le="0.1"}'), "2", "le is inclusive");
  assert.equal(s.get('wait_seconds_bucket{le="1"}'), "3");
  assert.equal(s.get('wait_seconds_bucket{le="+Inf"}'), "4");
  assert.equal(s.get("wait_seconds_sum"), "3.65");
  assert.equal(s.get("wait_seconds_count"), "4");
  assert.throws(() => new Histogram("x_seconds", "X.", [1, 0.5]), RangeError);
});

Deno.test("a labelled counter keeps at most `MAX_SERIES` series; the rest count as other", () => {
  const registry = new MetricsRegistry();
  const c = registry.counter("many_total", "Many.", ["type"]);
  for (let i = 0; i < MAX_SERIES + 50; i++) c.inc({ type: `T${i}` });
  const s = samples(registry.render());
  assert.equal(s.size, MAX_SERIES + 1);
  assert.equal(s.get('many_total{type="other"}'), "50");
});

Deno.test("`ServerMetrics.render()` starts with every counter at zero and sets the gauges", () => {
  const metrics = new ServerMetrics();
  const text = metrics.render({
    usersConnected: 3,
    links: [
      { server_id: "b-server", state: "up", group: true },
      { server_id: "c-server", state: "connecting", group: false },
    ],
    offlineQueueFrames: 7,
    signWaiting: 5,
  });
  const s = samples(text);
  assert.equal(s.get("socp_users_connected"), "3");
  assert.equal(s.get("socp_sign_waiting"), "5");
  assert.equal(s.get("socp_backpressure_pauses_total"), "0");
  assert.ok(Number(s.get("socp_process_resident_bytes")) > 1_000_000, "a real process's RSS");
  assert.ok(Number(s.get("socp_heap_used_bytes")) > 0);
  assert.equal(s.get("socp_servers_linked"), "1");
  assert.equal(s.get('socp_link_up{server_id="b-server",group="true"}'), "1");
  assert.equal(s.get('socp_link_up{server_id="c-server",group="false"}'), "0");
  assert.equal(s.get("socp_offline_queue_frames"), "7");
  assert.equal(s.get("socp_signatures_total"), "0");
  assert.equal(s.get("socp_login_failures_total"), "0");
  assert.equal(s.get("socp_login_blocks_total"), "0");
  assert.equal(s.get("socp_sign_seconds_count"), "0");
  assert.equal(s.get("socp_dm_delivery_seconds_count"), "0");
  for (
    const [name, type] of [
      ["socp_frames_in_total", "counter"],
      ["socp_frames_out_total", "counter"],
      ["socp_errors_sent_total", "counter"],
      ["socp_sign_seconds", "histogram"],
      ["socp_link_up", "gauge"],
    ]
  ) assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, "m"));
});

Deno.test("`ServerMetrics` counts frames by type, collapsing unknown types into other", () => {
  const metrics = new ServerMetrics();
  metrics.frameIn("MSG_DIRECT");
  metrics.frameIn("MSG_DIRECT");
  metrics.frameIn(undefined);
  metrics.frameIn('EVIL"} 1\nsocp_pwned 1');
  metrics.frameIn("lower_case");
  const s = samples(metrics.render({ usersConnected: 0, links: [], offlineQueueFrames: 0 }));
  assert.equal(s.get('socp_frames_in_total{type="MSG_DIRECT"}'), "2");
  assert.equal(s.get('socp_frames_in_total{type="other"}'), "3");
  assert.equal(s.has("socp_pwned"), false);
});

Deno.test("`ServerMetrics.frameSigned()` counts a signature, a frame out and an ERROR's code", () => {
  const metrics = new ServerMetrics();
  metrics.frameSigned("USER_DELIVER", {}, { seconds: 0.004, waitSeconds: 0.03 });
  metrics.frameSigned("ERROR", { code: "RATE_LIMIT" }, { seconds: 0.02 });
  metrics.frameSigned("ERROR", { code: "MADE_UP_BY_A_PEER" }, { seconds: 0.02 });
  metrics.frameSigned("ERROR", {}, { seconds: 0.02 });
  const s = samples(metrics.render({ usersConnected: 0, links: [], offlineQueueFrames: 0 }));
  assert.equal(s.get("socp_signatures_total"), "4");
  assert.equal(s.get("socp_sign_seconds_count"), "4");
  assert.equal(s.get('socp_sign_seconds_bucket{le="0.005"}'), "1");
  assert.equal(s.get('socp_frames_out_total{type="USER_DELIVER"}'), "1");
  assert.equal(s.get('socp_frames_out_total{type="ERROR"}'), "3");
  assert.equal(s.get('socp_errors_sent_total{code="RATE_LIMIT"}'), "1");
  assert.equal(s.get('socp_errors_sent_total{code="other"}'), "2");
  assert.equal(s.get("socp_sign_wait_seconds_count"), "1");
  assert.equal(s.get('socp_sign_wait_seconds_bucket{le="0.025"}'), "0");
  assert.equal(s.get('socp_sign_wait_seconds_bucket{le="0.05"}'), "1");
});

Deno.test("`ServerMetrics.delivered()` observes DMs with an arrival time only", () => {
  let now = 1000;
  const metrics = new ServerMetrics({ now: () => now });
  const arrived = metrics.now();
  now += 30;
  metrics.delivered("MSG_DIRECT", arrived);
  metrics.delivered("MSG_DIRECT", undefined);
  metrics.delivered("FILE_CHUNK", arrived);
  const s = samples(metrics.render({ usersConnected: 0, links: [], offlineQueueFrames: 0 }));
  assert.equal(s.get("socp_dm_delivery_seconds_count"), "1");
  assert.equal(s.get("socp_dm_delivery_seconds_sum"), "0.03");
  assert.equal(s.get('socp_dm_delivery_seconds_bucket{le="0.025"}'), "0");
  assert.equal(s.get('socp_dm_delivery_seconds_bucket{le="0.05"}'), "1");
});

Deno.test("`ServerMetrics.loginFailed()` counts failures and the blocks they start", () => {
  const metrics = new ServerMetrics();
  metrics.loginFailed(false);
  metrics.loginFailed(true);
  const s = samples(metrics.render({ usersConnected: 0, links: [], offlineQueueFrames: 0 }));
  assert.equal(s.get("socp_login_failures_total"), "2");
  assert.equal(s.get("socp_login_blocks_total"), "1");
});

Deno.test("`ServerMetrics.render()` leaves the queue gauge without a sample when unreadable", () => {
  const text = new ServerMetrics().render({
    usersConnected: 0,
    links: [],
    offlineQueueFrames: undefined,
  });
  assert.match(text, /^# TYPE socp_offline_queue_frames gauge$/m);
  assert.doesNotMatch(text, /^socp_offline_queue_frames /m);
});
