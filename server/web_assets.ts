/**
 * The browser client's files, as the server serves them on its own port: `/` (index.html),
 * `/app.js` (the committed bundle, see client/web/build.ts) and `/style.css`. They are read
 * once from the source tree (or from a `deno compile` binary that includes them) and kept in
 * memory; the server never imports client code, it only serves these files.
 *
 * @module
 */

/** One file of the web client. */
export interface WebAsset {
  /** The file's bytes. */
  body: Uint8Array;
  /** Its media type. */
  contentType: string;
}

/** The files of the web client by URL path. */
export interface WebAssets {
  /** The file served for `path`, if any. */
  get(path: string): WebAsset | undefined;
}

/** URL path → file under client/web/ and media type. */
export const WEB_FILES: Readonly<Record<string, { file: string; contentType: string }>> = {
  "/": { file: "index.html", contentType: "text/html; charset=utf-8" },
  "/app.js": { file: "app.bundle.js", contentType: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", contentType: "text/css; charset=utf-8" },
};

/** Where the web client's files are (client/web/ of this checkout). */
export const WEB_DIR: URL = new URL("../client/web/", import.meta.url);

/**
 * Reads the web client's files from `dir` (default {@linkcode WEB_DIR}). A file that cannot
 * be read is left out (its path then gets 404), so a server without the web client still runs.
 *
 * @example
 * ```ts
 * import { loadWebAssets } from "./web_assets.ts";
 * const assets = await loadWebAssets();
 * console.assert(assets.get("/")?.contentType.startsWith("text/html"));
 * ```
 */
export async function loadWebAssets(dir: URL = WEB_DIR): Promise<WebAssets> {
  const files = new Map<string, WebAsset>();
  await Promise.all(
    Object.entries(WEB_FILES).map(async ([path, { file, contentType }]) => {
      try {
        files.set(path, { body: await Deno.readFile(new URL(file, dir)), contentType });
      } catch {
        // Not there (e.g. a copy without client/web): that path answers 404.
      }
    }),
  );
  return { get: (path) => files.get(path) };
}
