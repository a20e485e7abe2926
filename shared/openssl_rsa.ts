/**
 * An {@linkcode RsaBackend} on the system's OpenSSL 3 (`libcrypto.so.3`) through Deno FFI.
 *
 * WebCrypto in Deno re-parses an RSA private key on every sign; OpenSSL keeps it parsed, which
 * makes an RSA-4096 PSS sign 2.6–3.2× cheaper, and signing is nearly all of a server's CPU. This
 * backend parses each key once into an `EVP_PKEY` (cached per key object, freed when the key
 * object is collected), runs the private-key operations (sign, decrypt) as nonblocking FFI calls
 * on Deno's blocking thread pool, at most two per core at a time (the rest wait in FIFO order;
 * with only one per core a core idles while the JS thread hands it the next call), and the cheap public-key operations (verify, encrypt) synchronously.
 * Key generation, import and `publicKeyOf` are the WebCrypto backend's, so keys keep one
 * representation and either backend accepts them; the bytes on the wire are the same.
 *
 * Not exported from `shared/mod.ts`: `shared/` must stay loadable in a browser, so only entry
 * points import this module. Loading needs `--allow-ffi`; without it, or without the library,
 * {@linkcode loadOpenSslBackend} returns `undefined` and {@linkcode chooseRsaBackend} falls back
 * to WebCrypto with the reason.
 *
 * @example
 * ```ts
 * import { chooseRsaBackend } from "./openssl_rsa.ts";
 * import { setRsaBackend } from "./rsa.ts";
 *
 * const choice = chooseRsaBackend({ mode: "webcrypto" });
 * setRsaBackend(choice.backend);
 * console.assert(choice.description === "webcrypto (SOCP_RSA=webcrypto)");
 * ```
 *
 * @module
 */

import { KeyError } from "./errors.ts";
import { Fifo } from "./_fifo.ts";
import {
  OAEP_MAX_PLAINTEXT,
  type PrivateKey,
  PSS_SALT_SIGN,
  PSS_SALTS_VERIFY,
  type PublicKey,
  RSA_BITS,
  type RsaBackend,
  setRsaBackend,
  webCryptoBackend,
} from "./rsa.ts";

/** Library names tried in order by {@linkcode loadOpenSslBackend}. */
export const OPENSSL_LIBRARIES: readonly string[] = ["libcrypto.so.3", "libcrypto.so"];

/** An {@linkcode RsaBackend} on OpenSSL; closing it unloads the library. */
export interface OpenSslBackend extends RsaBackend, AsyncDisposable {
  /** The library that was opened, e.g. `libcrypto.so.3`. */
  readonly library: string;
  /** OpenSSL's version text, e.g. `OpenSSL 3.0.19 27 Jan 2026`. */
  readonly version: string;
  /** Nonblocking calls (sign, decrypt) running now; at most `maxInFlight`. */
  readonly inFlight: number;
  /** Sign and decrypt operations waiting for a slot, served first in, first out. */
  readonly queued: number;
  /**
   * Refuses new operations, waits for the running and queued ones, frees every parsed key and
   * unloads the library. Keys stay usable with other backends.
   */
  close(): Promise<void>;
}

/** Options for {@linkcode loadOpenSslBackend}. */
export interface LoadOpenSslOptions {
  /** Library names or paths tried in order (default {@linkcode OPENSSL_LIBRARIES}). */
  libraries?: readonly string[];
  /** Most nonblocking calls in flight (default two per core, `navigator.hardwareConcurrency`). */
  maxInFlight?: number;
}

/** Which backend {@linkcode chooseRsaBackend} should pick. */
export type RsaBackendMode = "auto" | "openssl" | "webcrypto";

/** Options for {@linkcode chooseRsaBackend}. */
export interface ChooseRsaBackendOptions extends LoadOpenSslOptions {
  /**
   * `"auto"` tries OpenSSL and falls back to WebCrypto, `"openssl"` requires OpenSSL,
   * `"webcrypto"` never loads it. Default: the `SOCP_RSA` environment variable when readable
   * and set, else `"auto"`.
   */
  mode?: RsaBackendMode;
}

/** The backend {@linkcode chooseRsaBackend} picked, and why. */
export interface RsaBackendChoice {
  /** The backend to install with `setRsaBackend()`. */
  readonly backend: RsaBackend;
  /** Its name. */
  readonly name: "openssl" | "webcrypto";
  /**
   * One line for a log: `openssl (libcrypto.so.3, OpenSSL 3.0.19 …)` or
   * `webcrypto (<why not OpenSSL>)`.
   */
  readonly description: string;
}

const OPENSSL_INIT_NO_ATEXIT = 0x00080000n;
const OPENSSL_VERSION = 0;
const EVP_PKEY_RSA = 6;
const RSA_PKCS1_OAEP_PADDING = 4;
const RSA_PKCS1_PSS_PADDING = 6;
const MODULUS_BYTES = RSA_BITS / 8;

const SYMBOLS = {
  OPENSSL_init_crypto: { parameters: ["u64", "pointer"], result: "i32" },
  OpenSSL_version: { parameters: ["i32"], result: "pointer" },
  ERR_clear_error: { parameters: [], result: "void" },
  d2i_AutoPrivateKey: { parameters: ["pointer", "buffer", "i64"], result: "pointer" },
  d2i_PUBKEY: { parameters: ["pointer", "buffer", "i64"], result: "pointer" },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
  EVP_PKEY_get_base_id: { parameters: ["pointer"], result: "i32" },
  EVP_PKEY_get_bits: { parameters: ["pointer"], result: "i32" },
  EVP_MD_fetch: { parameters: ["pointer", "buffer", "pointer"], result: "pointer" },
  EVP_MD_free: { parameters: ["pointer"], result: "void" },
  EVP_MD_CTX_new: { parameters: [], result: "pointer" },
  EVP_MD_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_DigestSignInit: {
    parameters: ["pointer", "buffer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  EVP_DigestSign: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  EVP_DigestVerifyInit: {
    parameters: ["pointer", "buffer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  EVP_DigestVerify: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
    result: "i32",
  },
  EVP_PKEY_CTX_new: { parameters: ["pointer", "pointer"], result: "pointer" },
  EVP_PKEY_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_PKEY_CTX_set_rsa_padding: { parameters: ["pointer", "i32"], result: "i32" },
  EVP_PKEY_CTX_set_rsa_pss_saltlen: { parameters: ["pointer", "i32"], result: "i32" },
  EVP_PKEY_CTX_set_rsa_mgf1_md: { parameters: ["pointer", "pointer"], result: "i32" },
  EVP_PKEY_CTX_set_rsa_oaep_md: { parameters: ["pointer", "pointer"], result: "i32" },
  EVP_PKEY_encrypt_init: { parameters: ["pointer"], result: "i32" },
  EVP_PKEY_encrypt: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "usize"],
    result: "i32",
  },
  EVP_PKEY_decrypt_init: { parameters: ["pointer"], result: "i32" },
  EVP_PKEY_decrypt: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
} as const;

type Library = Deno.DynamicLibrary<typeof SYMBOLS>;
type Symbols = Library["symbols"];
type Pointer = Deno.PointerObject;

/** A parsed key; `pkey` is null once freed. */
interface Native {
  pkey: Pointer | null;
}

/** FIFO admission of at most `limit` concurrent tasks. */
class Limiter {
  #limit: number;
  #running = 0;
  #queue = new Fifo<() => void>();
  #idle: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running < this.#limit) this.#running++;
    // Else a finishing task hands its slot over (`#running` stays counted).
    else await new Promise<void>((resolve) => this.#queue.push(resolve));
    try {
      return await task();
    } finally {
      this.#release();
    }
  }

  /** Resolves once nothing runs or waits. */
  idle(): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next !== undefined) {
      next();
      return;
    }
    this.#running--;
    if (this.#running === 0) { for (const resolve of this.#idle.splice(0)) resolve(); }
  }
}

function pointerAddress(pointer: Pointer): bigint {
  return BigInt(Deno.UnsafePointer.value(pointer));
}

/** `data` as a fresh buffer that no caller can change during a nonblocking call (never empty). */
function ownedCopy(data: Uint8Array): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(Math.max(1, data.length));
  copy.set(data);
  return copy;
}

/** `data` itself for a synchronous call, or one byte when empty (so never a null pointer). */
function nonEmpty(data: Uint8Array): Uint8Array {
  return data.length > 0 ? data : new Uint8Array(1);
}

class OpenSslRsa implements OpenSslBackend {
  readonly library: string;
  readonly version: string;
  #lib: Library;
  #c: Symbols;
  #sha256: Pointer;
  #limiter: Limiter;
  #closed = false;
  #privates = new WeakMap<PrivateKey, Native>();
  #publics = new WeakMap<PublicKey, Native>();
  #live = new Set<Native>();
  #registry = new FinalizationRegistry<Native>((native) => this.#free(native));

  constructor(lib: Library, library: string, maxInFlight: number) {
    this.#lib = lib;
    this.#c = lib.symbols;
    this.library = library;
    const version = this.#c.OpenSSL_version(OPENSSL_VERSION);
    this.version = version === null ? "OpenSSL" : Deno.UnsafePointerView.getCString(version);
    const sha256 = this.#c.EVP_MD_fetch(null, new TextEncoder().encode("SHA256\0"), null);
    if (sha256 === null) {
      this.#c.ERR_clear_error();
      throw new Error(`OpenSSL in "${library}" has no SHA256`);
    }
    this.#sha256 = sha256;
    this.#limiter = new Limiter(maxInFlight);
  }

  get inFlight(): number {
    return this.#limiter.running;
  }

  get queued(): number {
    return this.#limiter.waiting;
  }

  generate = webCryptoBackend.generate.bind(webCryptoBackend);
  importPublic = webCryptoBackend.importPublic.bind(webCryptoBackend);
  importPrivate = webCryptoBackend.importPrivate.bind(webCryptoBackend);
  publicKeyOf = webCryptoBackend.publicKeyOf.bind(webCryptoBackend);

  async sign(key: PrivateKey, data: Uint8Array, saltLength = PSS_SALT_SIGN): Promise<Uint8Array> {
    if (!Number.isInteger(saltLength) || saltLength < 0 || saltLength > PSS_SALT_SIGN) {
      throw new RangeError(`PSS salt length must be 0 to ${PSS_SALT_SIGN}, got ${saltLength}`);
    }
    const pkey = this.#privateKey(key);
    return await this.#limiter.run(async () => {
      const c = this.#open();
      const ctx = c.EVP_MD_CTX_new();
      if (ctx === null) throw new Error("OpenSSL could not allocate a digest context");
      // Everything the native call reads or writes stays referenced by `call` until it is done.
      const call = {
        key,
        input: ownedCopy(data),
        sig: new Uint8Array(MODULUS_BYTES),
        sigLen: new BigUint64Array([BigInt(MODULUS_BYTES)]),
      };
      try {
        const pctx = new BigUint64Array(1);
        const setUp = c.EVP_DigestSignInit(ctx, pctx, this.#sha256, null, pkey) === 1 &&
          this.#pssParams(pctx, saltLength);
        if (!setUp) throw this.#failure("RSA-PSS sign setup");
        const ok = await c.EVP_DigestSign(
          ctx,
          call.sig,
          call.sigLen,
          call.input,
          BigInt(data.length),
        );
        // A failure left its error on a pool thread's queue: reported generically.
        if (ok !== 1) throw new Error("OpenSSL RSA-PSS sign failed");
        const length = Number(call.sigLen[0]);
        return length === MODULUS_BYTES ? call.sig : call.sig.slice(0, length);
      } finally {
        c.EVP_MD_CTX_free(ctx);
        keepAlive(call);
      }
    });
  }

  verify(
    key: PublicKey,
    data: Uint8Array,
    sig: Uint8Array,
    saltLengths: readonly number[] = PSS_SALTS_VERIFY,
  ): Promise<boolean> {
    try {
      if (sig.length !== MODULUS_BYTES) return Promise.resolve(false);
      const pkey = this.#publicKey(key);
      const c = this.#open();
      for (const saltLength of saltLengths) {
        if (!Number.isInteger(saltLength) || saltLength < 0 || saltLength > PSS_SALT_SIGN) continue;
        if (this.#verifyOnce(c, pkey, data, sig, saltLength)) return Promise.resolve(true);
      }
      return Promise.resolve(false);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  encrypt(key: PublicKey, plaintext: Uint8Array, label?: Uint8Array): Promise<Uint8Array> {
    // An OAEP label (Group 17's public channel only) takes the WebCrypto path: rare, and
    // EVP_PKEY_CTX_set0_rsa_oaep_label would need memory allocated by OpenSSL.
    if (label !== undefined && label.length > 0) {
      return this.#labelled().encrypt(key, plaintext, label);
    }
    try {
      if (plaintext.length > OAEP_MAX_PLAINTEXT) {
        throw new RangeError(
          `OAEP plaintext is ${plaintext.length} bytes; at most ${OAEP_MAX_PLAINTEXT} fit`,
        );
      }
      const pkey = this.#publicKey(key);
      const c = this.#open();
      const ctx = c.EVP_PKEY_CTX_new(pkey, null);
      if (ctx === null) throw this.#failure("RSA-OAEP encrypt setup");
      try {
        if (c.EVP_PKEY_encrypt_init(ctx) !== 1 || !this.#oaepParams(ctx)) {
          throw this.#failure("RSA-OAEP encrypt setup");
        }
        const out = new Uint8Array(MODULUS_BYTES);
        const outLen = new BigUint64Array([BigInt(MODULUS_BYTES)]);
        const input = nonEmpty(plaintext);
        if (c.EVP_PKEY_encrypt(ctx, out, outLen, input, BigInt(plaintext.length)) !== 1) {
          throw this.#failure("RSA-OAEP encrypt");
        }
        const length = Number(outLen[0]);
        return Promise.resolve(length === MODULUS_BYTES ? out : out.slice(0, length));
      } finally {
        c.EVP_PKEY_CTX_free(ctx);
      }
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async decrypt(key: PrivateKey, ciphertext: Uint8Array, label?: Uint8Array): Promise<Uint8Array> {
    if (label !== undefined && label.length > 0) {
      return await this.#labelled().decrypt(key, ciphertext, label);
    }
    const pkey = this.#privateKey(key);
    if (ciphertext.length !== MODULUS_BYTES) {
      throw new DOMException(
        `RSA-OAEP ciphertext must be ${MODULUS_BYTES} bytes, got ${ciphertext.length}`,
        "OperationError",
      );
    }
    return await this.#limiter.run(async () => {
      const c = this.#open();
      const ctx = c.EVP_PKEY_CTX_new(pkey, null);
      if (ctx === null) throw this.#failure("RSA-OAEP decrypt setup");
      const call = {
        key,
        input: ownedCopy(ciphertext),
        out: new Uint8Array(MODULUS_BYTES),
        outLen: new BigUint64Array([BigInt(MODULUS_BYTES)]),
      };
      try {
        if (c.EVP_PKEY_decrypt_init(ctx) !== 1 || !this.#oaepParams(ctx)) {
          throw this.#failure("RSA-OAEP decrypt setup");
        }
        const ok = await c.EVP_PKEY_decrypt(
          ctx,
          call.out,
          call.outLen,
          call.input,
          BigInt(ciphertext.length),
        );
        // The reason is on a pool thread's error queue; a bad ciphertext is all a caller needs.
        if (ok !== 1) throw new DOMException("RSA-OAEP decryption failed", "OperationError");
        return call.out.slice(0, Number(call.outLen[0]));
      } finally {
        c.EVP_PKEY_CTX_free(ctx);
        keepAlive(call);
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#limiter.idle();
    for (const native of [...this.#live]) {
      this.#registry.unregister(native);
      this.#free(native);
    }
    this.#c.EVP_MD_free(this.#sha256);
    this.#lib.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): Symbols {
    if (this.#closed) throw new Error(`OpenSSL backend (${this.library}) is closed`);
    return this.#c;
  }

  /** Clears this thread's OpenSSL error queue and returns an error naming `what`. */
  #failure(what: string): Error {
    this.#c.ERR_clear_error();
    return new Error(`OpenSSL ${what} failed`);
  }

  #pssParams(pctxOut: BigUint64Array, saltLength: number): boolean {
    const pctx = Deno.UnsafePointer.create(pctxOut[0]!);
    const c = this.#c;
    return pctx !== null &&
      c.EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
      c.EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, saltLength) > 0 &&
      c.EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, this.#sha256) > 0;
  }

  #oaepParams(ctx: Pointer): boolean {
    const c = this.#c;
    return c.EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
      c.EVP_PKEY_CTX_set_rsa_oaep_md(ctx, this.#sha256) > 0 &&
      c.EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, this.#sha256) > 0;
  }

  #verifyOnce(
    c: Symbols,
    pkey: Pointer,
    data: Uint8Array,
    sig: Uint8Array,
    saltLength: number,
  ): boolean {
    const ctx = c.EVP_MD_CTX_new();
    if (ctx === null) throw new Error("OpenSSL could not allocate a digest context");
    try {
      const pctx = new BigUint64Array(1);
      if (c.EVP_DigestVerifyInit(ctx, pctx, this.#sha256, null, pkey) !== 1) {
        throw this.#failure("RSA-PSS verify setup");
      }
      if (!this.#pssParams(pctx, saltLength)) throw this.#failure("RSA-PSS verify setup");
      const ok = c.EVP_DigestVerify(
        ctx,
        sig,
        BigInt(sig.length),
        nonEmpty(data),
        BigInt(data.length),
      );
      // A mismatch leaves a reason on the queue.
      if (ok !== 1) c.ERR_clear_error();
      return ok === 1;
    } finally {
      c.EVP_MD_CTX_free(ctx);
    }
  }

  /** WebCrypto with the key re-imported from its DER: the path for labelled OAEP. */
  #labelled(): Pick<RsaBackend, "encrypt" | "decrypt"> {
    return {
      encrypt: async (key, plaintext, label) =>
        await webCryptoBackend.encrypt(
          await webCryptoBackend.importPublic(key.spki),
          plaintext,
          label,
        ),
      decrypt: async (key, ciphertext, label) =>
        await webCryptoBackend.decrypt(
          await webCryptoBackend.importPrivate(key.pkcs8),
          ciphertext,
          label,
        ),
    };
  }

  #privateKey(key: PrivateKey): Pointer {
    const c = this.#open();
    const cached = this.#privates.get(key)?.pkey;
    if (cached) return cached;
    const native = this.#parse(key, key.pkcs8, c.d2i_AutoPrivateKey, "PKCS#8 private key");
    this.#privates.set(key, native);
    return native.pkey!;
  }

  #publicKey(key: PublicKey): Pointer {
    const c = this.#open();
    const cached = this.#publics.get(key)?.pkey;
    if (cached) return cached;
    const native = this.#parse(key, key.spki, c.d2i_PUBKEY, "SubjectPublicKeyInfo");
    this.#publics.set(key, native);
    return native.pkey!;
  }

  #parse(
    owner: object,
    der: Uint8Array,
    d2i: (a: null, pp: BigUint64Array, length: bigint) => Pointer | null,
    what: string,
  ): Native {
    const copy = ownedCopy(der);
    const cursor = new BigUint64Array([pointerAddress(Deno.UnsafePointer.of(copy)!)]);
    const pkey = d2i(null, cursor, BigInt(der.length));
    if (pkey === null) {
      this.#c.ERR_clear_error();
      throw new KeyError(`OpenSSL could not parse the RSA ${what}`);
    }
    const native: Native = { pkey };
    const id = this.#c.EVP_PKEY_get_base_id(pkey);
    const bits = this.#c.EVP_PKEY_get_bits(pkey);
    if (id !== EVP_PKEY_RSA || bits !== RSA_BITS) {
      this.#free(native);
      throw new KeyError(`RSA key must be ${RSA_BITS} bits, got key type ${id} of ${bits} bits`);
    }
    this.#live.add(native);
    this.#registry.register(owner, native, native);
    return native;
  }

  #free(native: Native): void {
    this.#live.delete(native);
    if (native.pkey !== null) this.#c.EVP_PKEY_free(native.pkey);
    native.pkey = null;
  }
}

/** Keeps `_value` reachable until this point (for buffers a native call used). */
function keepAlive(_value: unknown): void {}

function openLibrary(
  options: LoadOpenSslOptions,
): { backend: OpenSslBackend } | { reason: string } {
  if (typeof Deno === "undefined" || typeof Deno.dlopen !== "function") {
    return { reason: "no FFI in this runtime" };
  }
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return { reason: "no --allow-ffi permission" };
    }
  } catch {
    return { reason: "no --allow-ffi permission" };
  }
  const maxInFlight = options.maxInFlight ?? 2 * (navigator.hardwareConcurrency ?? 1);
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
    throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`);
  }
  const libraries = options.libraries ?? OPENSSL_LIBRARIES;
  const failures: string[] = [];
  for (const library of libraries) {
    let lib: Library;
    try {
      lib = Deno.dlopen(library, SYMBOLS);
    } catch (error) {
      failures.push(`${library}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    try {
      if (lib.symbols.OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, null) !== 1) {
        throw new Error("OPENSSL_init_crypto failed");
      }
      return { backend: new OpenSslRsa(lib, library, maxInFlight) };
    } catch (error) {
      lib.close();
      failures.push(`${library}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return { reason: failures.length > 0 ? failures.join("; ") : "no library names given" };
}

/**
 * Opens OpenSSL 3's `libcrypto` ({@linkcode OPENSSL_LIBRARIES} in order) and returns an RSA
 * backend on it, or `undefined` (never throws) when the library cannot be loaded or FFI is not
 * permitted (`--allow-ffi`). Each call opens the library again; close the backend when done with
 * it (a process that keeps it to the end need not).
 *
 * @example
 * ```ts
 * import { loadOpenSslBackend } from "./openssl_rsa.ts";
 * import { webCryptoBackend } from "./rsa.ts";
 * import { fixtureKeyPair } from "../tests/fixtures/keys.ts";
 *
 * await using openssl = loadOpenSslBackend();
 * if (openssl !== undefined) {
 *   const { privateKey, publicKey } = await fixtureKeyPair("user0");
 *   const data = new TextEncoder().encode("hello");
 *   const sig = await openssl.sign(privateKey, data);
 *   console.assert(await webCryptoBackend.verify(publicKey, data, sig));
 * }
 * ```
 */
export function loadOpenSslBackend(options: LoadOpenSslOptions = {}): OpenSslBackend | undefined {
  try {
    const opened = openLibrary(options);
    return "backend" in opened ? opened.backend : undefined;
  } catch {
    return undefined;
  }
}

/** An environment variable, or undefined when unset or not readable (never prompts). */
function envVar(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function modeFromEnv(): string {
  return envVar("SOCP_RSA") || "auto";
}

/**
 * Picks the RSA backend for a process: OpenSSL when it loads (see
 * {@linkcode loadOpenSslBackend}), else WebCrypto, with a one-line description saying which and
 * why. `mode` (default `SOCP_RSA`, else `"auto"`) can force either; `"openssl"` throws an
 * `Error` with the reason when OpenSSL cannot be loaded, an unknown mode a `RangeError`.
 *
 * @example
 * ```ts
 * import { chooseRsaBackend } from "./openssl_rsa.ts";
 * import { webCryptoBackend } from "./rsa.ts";
 *
 * const choice = chooseRsaBackend({ mode: "webcrypto" });
 * console.assert(choice.name === "webcrypto" && choice.backend === webCryptoBackend);
 * ```
 */
export function chooseRsaBackend(options: ChooseRsaBackendOptions = {}): RsaBackendChoice {
  const mode: string = options.mode ?? modeFromEnv();
  if (mode !== "auto" && mode !== "openssl" && mode !== "webcrypto") {
    throw new RangeError(`SOCP_RSA must be "auto", "openssl" or "webcrypto", got "${mode}"`);
  }
  if (mode === "webcrypto") {
    return {
      backend: webCryptoBackend,
      name: "webcrypto",
      description: "webcrypto (SOCP_RSA=webcrypto)",
    };
  }
  const opened = openLibrary(options);
  if ("backend" in opened) {
    const { backend } = opened;
    return {
      backend,
      name: "openssl",
      description: `openssl (${backend.library}, ${backend.version})`,
    };
  }
  if (mode === "openssl") {
    throw new Error(`SOCP_RSA=openssl, but OpenSSL could not be loaded: ${opened.reason}`);
  }
  return {
    backend: webCryptoBackend,
    name: "webcrypto",
    description: `webcrypto (${opened.reason})`,
  };
}

/** Options for {@linkcode installRsaBackend}. */
export interface InstallRsaBackendOptions extends ChooseRsaBackendOptions {
  /**
   * Where the `rsa backend: …` line goes. Default: stderr for a server; for a client only when
   * `SOCP_DEBUG=1`, so its terminal stays quiet.
   */
  log?: (line: string) => void;
}

function stderrLine(line: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
  } catch {
    // stderr closed: nothing to report to.
  }
}

/**
 * What a `socp server` or `socp client` process does before anything else: picks its RSA
 * backend ({@linkcode chooseRsaBackend}), installs it with `setRsaBackend()` and logs one line
 * `rsa backend: <description>`. Throws like {@linkcode chooseRsaBackend}.
 *
 * @example
 * ```ts
 * import { installRsaBackend } from "./openssl_rsa.ts";
 * import { rsa, webCryptoBackend } from "./rsa.ts";
 *
 * const lines: string[] = [];
 * installRsaBackend("server", { mode: "webcrypto", log: (line) => lines.push(line) });
 * console.assert(rsa() === webCryptoBackend);
 * console.assert(lines[0] === "rsa backend: webcrypto (SOCP_RSA=webcrypto)");
 * ```
 */
export function installRsaBackend(
  role: "server" | "client",
  options: InstallRsaBackendOptions = {},
): RsaBackendChoice {
  const choice = chooseRsaBackend(options);
  setRsaBackend(choice.backend);
  const log = options.log ??
    (role === "server" || envVar("SOCP_DEBUG") === "1" ? stderrLine : undefined);
  log?.(`rsa backend: ${choice.description}`);
  return choice;
}
