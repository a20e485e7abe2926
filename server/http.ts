/**
 * The HTTP side of a server's port: WebSocket upgrades for users and servers, the browser client
 * (`GET /`, `/app.js`, `/style.css`: see web_assets.ts, served with a strict Content-Security-
 * Policy), and the operator endpoints `GET /healthz` (the process is alive), `GET /readyz`
 * (storage, listener and links; 200 or 503 with the reason) and `GET /metrics` (Prometheus
 * text, see metrics.ts). Routing only: what the endpoints report comes from an
 * {@linkcode OperatorEndpoints}.
 *
 * @module
 */

import type { LinkStatus } from "./mesh.ts";
import type { WebAsset, WebAssets } from "./web_assets.ts";

/** What `GET /readyz` reports. */
export interface Readiness {
  /** `ready` (200) or `not_ready` (503). */
  status: "ready" | "not_ready";
  /** Why the server is not ready (absent when ready). */
  reason?: string;
  /** `ok`, or `error: <message>` when storage did not answer a trivial query. */
  storage: string;
  /** True while the server accepts connections. */
  listening: boolean;
  /** Every known server and its link. */
  links: LinkStatus[];
  /** Users connected to this server. */
  users_online: number;
}

/** What the HTTP endpoints need from a server. */
export interface OperatorEndpoints {
  /** The readiness report. */
  readiness(): Promise<Readiness>;
  /** The metrics in the Prometheus text format. */
  metricsText(): Promise<string>;
}

/** Options for {@linkcode httpHandler}. */
export interface HttpHandlerOptions {
  /** Serve `/metrics` here (false on the main port when a separate metrics address is set). */
  metrics: boolean;
  /**
   * Takes WebSocket upgrade requests (the main port); without it they get 404. Other requests
   * for `/` get 426 Upgrade Required when it is set.
   */
  upgrade?: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response;
  /** The browser client's files (the main port); `/` then serves the page instead of 426. */
  web?: WebAssets;
}

/**
 * The Content-Security-Policy of the web client: its own scripts, styles and images only (plus
 * `data:`/`blob:` images), WebSocket connections anywhere (the server group's other servers),
 * no plugins, no `<base>`, no framing.
 */
export const WEB_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; " +
  "connect-src 'self' ws: wss:; img-src 'self' data: blob:; object-src 'none'; " +
  "base-uri 'none'; frame-ancestors 'none'";

/** Headers of every web client response. */
const WEB_HEADERS = {
  "content-security-policy": WEB_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

function asset(file: WebAsset): Response {
  return new Response(file.body as Uint8Array<ArrayBuffer>, {
    status: 200,
    headers: { ...WEB_HEADERS, "content-type": file.contentType },
  });
}

/** Media type of the Prometheus text exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };
const TEXT_HEADERS = { "content-type": "text/plain; charset=utf-8" };
const NO_STORE = { "cache-control": "no-store" };

function json(body: unknown, status: number): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { ...JSON_HEADERS, ...NO_STORE },
  });
}

function text(body: string, status: number, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { ...TEXT_HEADERS, ...headers } });
}

/**
 * The request handler of a listener: WebSocket upgrades (when `upgrade` is given), then the
 * web client's files (when `web` is given) and the operator endpoints (GET or HEAD; other
 * methods 405), `/` 426 on a main port without the web client, anything else 404.
 *
 * @example
 * ```ts
 * import { httpHandler } from "./http.ts";
 * const handler = httpHandler({
 *   readiness: () => Promise.resolve({
 *     status: "ready",
 *     storage: "ok",
 *     listening: true,
 *     links: [],
 *     users_online: 0,
 *   }),
 *   metricsText: () => Promise.resolve("up 1\n"),
 * }, { metrics: true });
 * const info = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } } as const;
 * const response = await handler(new Request("http://localhost/healthz"), {
 *   ...info,
 *   completed: Promise.resolve(),
 * });
 * console.assert(response.status === 200);
 * ```
 */
export function httpHandler(
  endpoints: OperatorEndpoints,
  options: HttpHandlerOptions,
): (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Promise<Response> {
  const { upgrade } = options;
  return async (request, info) => {
    if (upgrade && request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      return upgrade(request, info);
    }
    const path = new URL(request.url).pathname;
    const file = options.web?.get(path);
    const known = file !== undefined || path === "/healthz" || path === "/readyz" ||
      (path === "/metrics" && options.metrics) || (path === "/" && upgrade !== undefined);
    if (!known) return text("Not found\n", 404);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(`Method ${request.method.slice(0, 16)} not allowed\n`, 405, {
        allow: "GET, HEAD",
      });
    }
    if (file) return asset(file);
    switch (path) {
      case "/healthz":
        return json({ status: "ok" }, 200);
      case "/readyz": {
        const report = await endpoints.readiness();
        return json(report, report.status === "ready" ? 200 : 503);
      }
      case "/metrics":
        return text(await endpoints.metricsText(), 200, {
          "content-type": METRICS_CONTENT_TYPE,
          ...NO_STORE,
        });
      default:
        return text("socp server: connect with a WebSocket (SOCP v1.3)\n", 426);
    }
  };
}
