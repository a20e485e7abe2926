/**
 * Server metrics for Prometheus: a small registry of counters and histograms, rendered in the
 * Prometheus text exposition format (version 0.0.4) for `GET /metrics`.
 *
 * The text format is written by hand here: it is `# HELP` and `# TYPE` lines followed by
 * `name{label="value"} number` samples, with three escapes in label values. That is simpler
 * than an npm dependency (prom-client and the like bring a global default registry, Node-only
 * collectors and more code than this file), so socp has none.
 *
 * One {@linkcode ServerMetrics} is created per server (no module-level state) and reached
 * through the hub. Label values never come from the network unchecked: frame types are counted
 * only after the frame decoder recognised them (anything else is `other`), error codes outside
 * {@linkcode ERROR_CODES} become `other`, and every labelled metric keeps at most
 * {@linkcode MAX_SERIES} series, so label cardinality stays bounded whatever peers send.
 *
 * @module
 */

import { ERROR_CODES } from "../shared/mod.ts";
import type { LinkStatus } from "./mesh.ts";

/** Label names and values of one series. */
export type Labels = Readonly<Record<string, string>>;

/** Most series one labelled metric keeps; further label sets are counted as `other`. */
export const MAX_SERIES = 128;

/** Buckets of `socp_sign_seconds`, in seconds. */
export const SIGN_BUCKETS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
];

/** Buckets of `socp_dm_delivery_seconds`, in seconds. */
export const DELIVERY_BUCKETS: readonly number[] = [...SIGN_BUCKETS, 2.5, 5];

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** What a frame type looks like; anything else is not even kept as a label value. */
const FRAME_TYPE = /^[A-Z][A-Z0-9_]{0,47}$/;
const KNOWN_ERROR_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/**
 * Escapes a label value for the text format: backslash, double quote and line feed.
 *
 * @example
 * ```ts
 * import { escapeLabelValue } from "./metrics.ts";
 * console.assert(escapeLabelValue('a"b\\c\nd') === 'a\\"b\\\\c\\nd');
 * ```
 */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** Escapes HELP text: backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

/**
 * A sample value as the text format writes it: `+Inf`, `-Inf`, `NaN`, or the shortest decimal.
 *
 * @example
 * ```ts
 * import { formatValue } from "./metrics.ts";
 * console.assert(formatValue(Infinity) === "+Inf" && formatValue(0.25) === "0.25");
 * ```
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** `{a="1",b="2"}` in the given label order, or `""` without labels. */
function renderLabels(names: readonly string[], labels: Labels, extra?: [string, string]): string {
  const parts = names.map((n) => `${n}="${escapeLabelValue(labels[n] ?? "")}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function checkNames(name: string, labelNames: readonly string[]): void {
  if (!METRIC_NAME.test(name)) throw new TypeError(`Invalid metric name "${name}"`);
  for (const label of labelNames) {
    if (!LABEL_NAME.test(label) || label.startsWith("__") || label === "le") {
      throw new TypeError(`Invalid label name "${label}" for metric "${name}"`);
    }
  }
}

/** One metric family of a {@linkcode MetricsRegistry}. */
interface Family {
  /** Appends the family's lines (HELP, TYPE, samples) to `out`. */
  render(out: string[]): void;
}

/** Series of one labelled metric, keyed by their label values, at most {@linkcode MAX_SERIES}. */
class SeriesMap<T> {
  readonly #labelNames: readonly string[];
  readonly #make: () => T;
  readonly #series = new Map<string, { labels: Labels; value: T }>();

  constructor(labelNames: readonly string[], make: () => T) {
    this.#labelNames = labelNames;
    this.#make = make;
  }

  /** The series for `labels`; past the cap, the series with every label value `other`. */
  get(labels: Labels): T {
    let key = this.#labelNames.map((n) => labels[n] ?? "").join("\u0000");
    let entry = this.#series.get(key);
    if (entry === undefined && this.#series.size >= MAX_SERIES) {
      const other = Object.fromEntries(this.#labelNames.map((n) => [n, "other"]));
      key = this.#labelNames.map(() => "other").join("\u0000");
      labels = other;
      entry = this.#series.get(key);
    }
    if (entry === undefined) {
      entry = { labels: { ...labels }, value: this.#make() };
      this.#series.set(key, entry);
    }
    return entry.value;
  }

  /** Every series, sorted by label values (a stable output order). */
  entries(): { labels: Labels; value: T }[] {
    return [...this.#series.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, entry]) => entry);
  }
}

/** A monotonically increasing count. */
export class Counter implements Family {
  readonly #name: string;
  readonly #help: string;
  readonly #labelNames: readonly string[];
  readonly #series: SeriesMap<{ value: number }>;

  /** Creates a counter; prefer {@linkcode MetricsRegistry.counter}. */
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    checkNames(name, labelNames);
    this.#name = name;
    this.#help = help;
    this.#labelNames = labelNames;
    this.#series = new SeriesMap(labelNames, () => ({ value: 0 }));
    if (labelNames.length === 0) this.#series.get({});
  }

  /** Adds `by` (default 1, never negative) to the series of `labels`. */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`Counter ${this.#name} cannot grow by ${by}`);
    this.#series.get(labels).value += by;
  }

  /** Appends the HELP, TYPE and sample lines. */
  render(out: string[]): void {
    out.push(`# HELP ${this.#name} ${escapeHelp(this.#help)}`, `# TYPE ${this.#name} counter`);
    for (const { labels, value } of this.#series.entries()) {
      out.push(
        `${this.#name}${renderLabels(this.#labelNames, labels)} ${formatValue(value.value)}`,
      );
    }
  }
}

/** A distribution of observations in cumulative buckets, with their sum and count. */
export class Histogram implements Family {
  readonly #name: string;
  readonly #help: string;
  readonly #buckets: readonly number[];
  #counts: number[];
  #sum = 0;
  #count = 0;

  /** Creates a histogram with upper bounds `buckets` (ascending; `+Inf` is implied). */
  constructor(name: string, help: string, buckets: readonly number[]) {
    checkNames(name, []);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) {
        throw new RangeError(`Buckets of ${name} must be strictly ascending`);
      }
    }
    this.#name = name;
    this.#help = help;
    this.#buckets = buckets.filter((b) => b !== Infinity);
    this.#counts = this.#buckets.map(() => 0);
  }

  /** Records one observation. */
  observe(value: number): void {
    if (Number.isNaN(value)) return;
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.#buckets.length; i++) {
      if (value <= this.#buckets[i]!) this.#counts[i]!++;
    }
  }

  /** Appends the HELP, TYPE, `_bucket`, `_sum` and `_count` lines. */
  render(out: string[]): void {
    const name = this.#name;
    out.push(`# HELP ${name} ${escapeHelp(this.#help)}`, `# TYPE ${name} histogram`);
    this.#buckets.forEach((bound, i) => {
      out.push(`${name}_bucket{le="${formatValue(bound)}"} ${this.#counts[i]}`);
    });
    out.push(
      `${name}_bucket{le="+Inf"} ${this.#count}`,
      `${name}_sum ${formatValue(this.#sum)}`,
      `${name}_count ${this.#count}`,
    );
  }
}

/** A gauge whose samples are set just before each rendering (values read at scrape time). */
export class Gauge implements Family {
  readonly #name: string;
  readonly #help: string;
  readonly #labelNames: readonly string[];
  #samples: { labels: Labels; value: number }[] = [];

  /** Creates a gauge; prefer {@linkcode MetricsRegistry.gauge}. */
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    checkNames(name, labelNames);
    this.#name = name;
    this.#help = help;
    this.#labelNames = labelNames;
  }

  /**
   * Replaces every sample (at most {@linkcode MAX_SERIES}; the rest are dropped). An empty list
   * renders the family without samples, e.g. when the value could not be read.
   */
  set(samples: readonly { labels?: Labels; value: number }[]): void {
    this.#samples = samples.slice(0, MAX_SERIES).map((s) => ({
      labels: s.labels ?? {},
      value: s.value,
    }));
  }

  /** Appends the HELP, TYPE and sample lines. */
  render(out: string[]): void {
    out.push(`# HELP ${this.#name} ${escapeHelp(this.#help)}`, `# TYPE ${this.#name} gauge`);
    for (const { labels, value } of this.#samples) {
      out.push(`${this.#name}${renderLabels(this.#labelNames, labels)} ${formatValue(value)}`);
    }
  }
}

/**
 * Metric families rendered together, in registration order.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * registry.counter("jobs_total", "Jobs done.", ["kind"]).inc({ kind: "a" });
 * console.assert(registry.render().includes('jobs_total{kind="a"} 1'));
 * ```
 */
export class MetricsRegistry {
  #families: Family[] = [];
  #names = new Set<string>();

  #add<T extends Family>(name: string, family: T): T {
    if (this.#names.has(name)) throw new TypeError(`Metric "${name}" is registered twice`);
    this.#names.add(name);
    this.#families.push(family);
    return family;
  }

  /** Registers a counter. */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(name, new Counter(name, help, labelNames));
  }

  /** Registers a gauge (samples set before rendering). */
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(name, new Gauge(name, help, labelNames));
  }

  /** Registers a histogram. */
  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.#add(name, new Histogram(name, help, buckets));
  }

  /** The text exposition of every family, ending with a line feed. */
  render(): string {
    const out: string[] = [];
    for (const family of this.#families) family.render(out);
    return out.join("\n") + "\n";
  }
}

/** Values read at scrape time for the gauges of {@linkcode ServerMetrics}. */
export interface GaugeValues {
  /** Users connected to this server. */
  usersConnected: number;
  /** Every known server and the state of its link. */
  links: readonly LinkStatus[];
  /** Frames in the offline queue, or `undefined` when storage could not be read. */
  offlineQueueFrames: number | undefined;
  /** Signatures waiting in the signing scheduler (no sample when absent). */
  signWaiting?: number;
}

/** Options for {@linkcode ServerMetrics}. */
export interface ServerMetricsOptions {
  /** Monotonic clock in ms for durations (default `performance.now`). */
  now?: () => number;
}

/**
 * The metrics of one socp server. Call sites record events with one call each (a frame in, a
 * frame signed, a DM delivered, a failed login); gauges are read when {@linkcode render} runs.
 *
 * @example
 * ```ts
 * import { ServerMetrics } from "./metrics.ts";
 * const metrics = new ServerMetrics();
 * metrics.frameIn("MSG_DIRECT");
 * const text = metrics.render({ usersConnected: 2, links: [], offlineQueueFrames: 0 });
 * console.assert(text.includes('socp_frames_in_total{type="MSG_DIRECT"} 1'));
 * console.assert(text.includes("socp_users_connected 2"));
 * ```
 */
export class ServerMetrics {
  readonly #now: () => number;
  readonly #registry = new MetricsRegistry();
  readonly #usersConnected = this.#registry.gauge(
    "socp_users_connected",
    "Users connected to this server.",
  );
  readonly #serversLinked = this.#registry.gauge(
    "socp_servers_linked",
    "Servers with a live link to this server.",
  );
  readonly #linkUp = this.#registry.gauge(
    "socp_link_up",
    "1 when the link to a known server is up, else 0; group=true for the operator's server group.",
    ["server_id", "group"],
  );
  readonly #framesIn = this.#registry.counter(
    "socp_frames_in_total",
    "Frames received from users and servers, by type (types the decoder does not know: other).",
    ["type"],
  );
  readonly #framesOut = this.#registry.counter(
    "socp_frames_out_total",
    "Frames signed and sent by this server, by type (a frame fanned out to several links counts once).",
    ["type"],
  );
  readonly #errorsSent = this.#registry.counter(
    "socp_errors_sent_total",
    "ERROR frames sent to users and servers, by code.",
    ["code"],
  );
  readonly #signatures = this.#registry.counter(
    "socp_signatures_total",
    "Envelope signatures made by this server (RSA-PSS).",
  );
  readonly #signSeconds = this.#registry.histogram(
    "socp_sign_seconds",
    "Time to sign one envelope, in seconds.",
    SIGN_BUCKETS,
  );
  readonly #signWaitSeconds = this.#registry.histogram(
    "socp_sign_wait_seconds",
    "Time one envelope waited for a slot in the signing scheduler, in seconds.",
    SIGN_BUCKETS,
  );
  readonly #backpressure = this.#registry.counter(
    "socp_backpressure_pauses_total",
    "Times a user connection stopped being read because its signatures waited too long.",
  );
  readonly #residentBytes = this.#registry.gauge(
    "socp_process_resident_bytes",
    "Resident memory of the server process, in bytes.",
  );
  readonly #heapUsedBytes = this.#registry.gauge(
    "socp_heap_used_bytes",
    "JavaScript heap in use (live objects and garbage not yet collected), in bytes.",
  );
  readonly #signWaiting = this.#registry.gauge(
    "socp_sign_waiting",
    "Signatures waiting for a slot in the signing scheduler.",
  );
  readonly #deliverySeconds = this.#registry.histogram(
    "socp_dm_delivery_seconds",
    "Time from a user's MSG_DIRECT arriving to its USER_DELIVER or SERVER_DELIVER being sent, in seconds.",
    DELIVERY_BUCKETS,
  );
  readonly #queueFrames = this.#registry.gauge(
    "socp_offline_queue_frames",
    "Frames waiting in the offline queue for users who are not online.",
  );
  readonly #loginFailures = this.#registry.counter(
    "socp_login_failures_total",
    "Logins refused for a wrong username or password on this server.",
  );
  readonly #loginBlocks = this.#registry.counter(
    "socp_login_blocks_total",
    "Blocks of an account from one address started by failed logins on this server.",
  );

  /** Creates the metrics of one server, every counter at zero. */
  constructor(options: ServerMetricsOptions = {}) {
    this.#now = options.now ?? (() => performance.now());
  }

  /** Milliseconds on the metrics clock, e.g. when a frame arrived. */
  now(): number {
    return this.#now();
  }

  /**
   * A frame arrived. Pass the type the frame decoder returned, or `undefined` for a frame it did
   * not recognise (counted as `other`).
   */
  frameIn(type: string | undefined): void {
    this.#framesIn.inc({ type: frameTypeLabel(type) });
  }

  /**
   * This server signed a frame of `type` in `seconds` (to be sent): one signature, one frame
   * out, and for an ERROR one error of `payload.code`.
   */
  frameSigned(
    type: string,
    payload: { readonly [key: string]: unknown },
    time: { seconds: number; waitSeconds?: number },
  ): void {
    this.#signatures.inc();
    this.#signSeconds.observe(time.seconds);
    if (time.waitSeconds !== undefined) this.#signWaitSeconds.observe(time.waitSeconds);
    const label = frameTypeLabel(type);
    this.#framesOut.inc({ type: label });
    if (label === "ERROR") {
      const code = payload["code"];
      this.#errorsSent.inc({
        code: typeof code === "string" && KNOWN_ERROR_CODES.has(code) ? code : "other",
      });
    }
  }

  /**
   * A user frame of `type` was sent on to its recipient or the recipient's server; a MSG_DIRECT
   * whose arrival time is known (`arrivedAt`, from {@linkcode now}) is observed in
   * `socp_dm_delivery_seconds`.
   */
  delivered(type: string, arrivedAt: number | undefined): void {
    if (type !== "MSG_DIRECT" || arrivedAt === undefined) return;
    this.#deliverySeconds.observe(Math.max(0, this.#now() - arrivedAt) / 1000);
  }

  /** A login failed on this server; `blocked` when that failure started a block. */
  loginFailed(blocked: boolean): void {
    this.#loginFailures.inc();
    if (blocked) this.#loginBlocks.inc();
  }

  /** A user connection paused reading for backpressure. */
  backpressure(): void {
    this.#backpressure.inc();
  }

  /** The text exposition, with the gauges set from `gauges`. */
  render(gauges: GaugeValues): string {
    this.#usersConnected.set([{ value: gauges.usersConnected }]);
    this.#serversLinked.set([{ value: gauges.links.filter((l) => l.state === "up").length }]);
    this.#linkUp.set(gauges.links.map((l) => ({
      labels: { server_id: l.server_id, group: String(l.group) },
      value: l.state === "up" ? 1 : 0,
    })));
    this.#queueFrames.set(
      gauges.offlineQueueFrames === undefined ? [] : [{ value: gauges.offlineQueueFrames }],
    );
    this.#signWaiting.set(gauges.signWaiting === undefined ? [] : [{ value: gauges.signWaiting }]);
    const memory = Deno.memoryUsage();
    this.#residentBytes.set([{ value: memory.rss }]);
    this.#heapUsedBytes.set([{ value: memory.heapUsed }]);
    return this.#registry.render();
  }
}

/** The `type` label of a frame type: the type when it looks like one, else `other`. */
function frameTypeLabel(type: string | undefined): string {
  return type !== undefined && FRAME_TYPE.test(type) ? type : "other";
}
