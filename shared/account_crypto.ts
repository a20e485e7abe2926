/**
 * Account secrets (reference §14 login model). The client derives 64 bytes from the password
 * with scrypt (memory-hard; parameters stored with the blob): the first 32 bytes are the key
 * that encrypts the private key (AES-256-GCM, never leaves the client), the last 32 the
 * `auth_key` that proves the password to a server. Servers store only
 * `verifier = SHA-256(auth_key)`, so they never see the password, the key-encryption key or
 * the private key in the clear.
 *
 * @module
 */

import { scryptAsync } from "@noble/hashes/scrypt.js";
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { isObject, type JsonObject } from "./envelope.ts";
import { type PrivateKey, rsa } from "./rsa.ts";

/** scrypt parameters, stored with the encrypted key. */
export interface KdfParams {
  /** Always "scrypt". */
  kdf: "scrypt";
  /** CPU/memory cost (power of two). */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
  /** base64url random salt (16 bytes). */
  salt: string;
}

/** The encrypted private key blob (`users.privkey_store`). */
export interface PrivkeyStore extends KdfParams {
  /** Format version. */
  v: 1;
  /** Always "AES-256-GCM". */
  cipher: "AES-256-GCM";
  /** base64url 12-byte IV. */
  iv: string;
  /** base64url ciphertext (PKCS#8 DER plus tag). */
  ct: string;
}

/** Default scrypt cost: N = 2^15, r = 8, p = 1 (about 32 MiB, ~150 ms). */
export const DEFAULT_KDF: Omit<KdfParams, "salt"> = { kdf: "scrypt", N: 1 << 15, r: 8, p: 1 };

/** Wrong password (the private key blob does not decrypt). */
export class BadPasswordError extends Error {
  /** Creates the error. */
  constructor(message = "Wrong password", options?: ErrorOptions) {
    super(message, options);
    this.name = "BadPasswordError";
  }
}

/** Usernames: 3–32 letters, digits, `_`, `.` or `-`, starting with a letter or digit. */
export const USERNAME_PATTERN: RegExp = /^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$/;

/**
 * Checks a username; returns an error message or `undefined` when it is fine.
 *
 * @example
 * ```ts
 * import { usernameProblem } from "./account_crypto.ts";
 * console.assert(usernameProblem("alice") === undefined);
 * console.assert(usernameProblem("a b") !== undefined);
 * ```
 */
export function usernameProblem(name: string): string | undefined {
  return USERNAME_PATTERN.test(name)
    ? undefined
    : `Username "${
      name.slice(0, 40)
    }" must be 3-32 letters, digits, "_", "." or "-", starting with a letter or digit`;
}

/**
 * The key an account name is unique and looked up under: the lower case of its NFC form, so
 * names differing only in letter case or Unicode normalization are the same account.
 *
 * @example
 * ```ts
 * import { usernameKey } from "./account_crypto.ts";
 * console.assert(usernameKey("Carol") === usernameKey("cAROL"));
 * ```
 */
export function usernameKey(username: string): string {
  return username.normalize("NFC").toLowerCase();
}

/** Validates KDF parameters from a peer (bounds stop a hostile server hanging a client). */
export function toKdfParams(value: unknown): KdfParams {
  if (!isObject(value)) throw new TypeError("KDF parameters are not an object");
  const { kdf, N, r, p, salt } = value;
  if (kdf !== "scrypt") throw new TypeError(`Unsupported KDF "${String(kdf)}"`);
  if (typeof N !== "number" || !Number.isInteger(Math.log2(N)) || N < 1 << 10 || N > 1 << 20) {
    throw new RangeError(`scrypt N must be a power of two from 2^10 to 2^20, got ${String(N)}`);
  }
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1 || r > 16) {
    throw new RangeError(`scrypt r must be 1 to 16, got ${String(r)}`);
  }
  if (typeof p !== "number" || !Number.isInteger(p) || p < 1 || p > 4) {
    throw new RangeError(`scrypt p must be 1 to 4, got ${String(p)}`);
  }
  if (typeof salt !== "string" || decodeBase64Url(salt).length < 8) {
    throw new TypeError("scrypt salt must be base64url of at least 8 bytes");
  }
  return { kdf, N, r, p, salt };
}

/** Validates a private key blob from a peer. */
export function toPrivkeyStore(value: unknown): PrivkeyStore {
  const params = toKdfParams(value);
  const { v, cipher, iv, ct } = value as JsonObject;
  if (v !== 1 || cipher !== "AES-256-GCM" || typeof iv !== "string" || typeof ct !== "string") {
    throw new TypeError("Private key blob is not a v1 AES-256-GCM blob");
  }
  return { ...params, v, cipher, iv, ct };
}

/** Only the KDF parameters of a blob. */
export function kdfParamsOf(store: KdfParams): KdfParams {
  return { kdf: store.kdf, N: store.N, r: store.r, p: store.p, salt: store.salt };
}

/** Derives the key-encryption key and the auth key from a password. */
export async function deriveAccountKeys(
  password: string,
  params: KdfParams,
): Promise<{ kek: Uint8Array; authKey: Uint8Array }> {
  const out = await scryptAsync(
    new TextEncoder().encode(password.normalize("NFC")),
    decodeBase64Url(params.salt),
    {
      N: params.N,
      r: params.r,
      p: params.p,
      dkLen: 64,
      maxmem: 2 ** 31,
    },
  );
  return { kek: out.slice(0, 32), authKey: out.slice(32) };
}

/** `SHA-256(auth_key)` as base64url: what a server stores and compares. */
export async function verifierOf(authKey: Uint8Array): Promise<string> {
  return encodeBase64Url(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(authKey))),
  );
}

async function aesKey(kek: Uint8Array): Promise<CryptoKey> {
  return await crypto.subtle.importKey("raw", new Uint8Array(kek), "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

/**
 * Encrypts a private key under a password: returns the blob, the `auth_key` (base64url) and
 * its verifier. Fresh salt and IV each time.
 */
export async function sealPrivateKey(
  privateKey: PrivateKey,
  password: string,
  options: { kdf?: Omit<KdfParams, "salt"> } = {},
): Promise<{ store: PrivkeyStore; authKey: string; verifier: string }> {
  const params: KdfParams = {
    ...(options.kdf ?? DEFAULT_KDF),
    salt: encodeBase64Url(crypto.getRandomValues(new Uint8Array(16))),
  };
  const { kek, authKey } = await deriveAccountKeys(password, params);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv },
      await aesKey(kek),
      new Uint8Array(privateKey.pkcs8),
    ),
  );
  kek.fill(0);
  return {
    store: {
      v: 1,
      ...params,
      cipher: "AES-256-GCM",
      iv: encodeBase64Url(iv),
      ct: encodeBase64Url(ct),
    },
    authKey: encodeBase64Url(authKey),
    verifier: await verifierOf(authKey),
  };
}

/** Decrypts a private key blob; throws {@linkcode BadPasswordError} on a wrong password. */
export async function openPrivateKey(store: PrivkeyStore, password: string): Promise<PrivateKey> {
  const { kek } = await deriveAccountKeys(password, store);
  let pkcs8: Uint8Array;
  try {
    pkcs8 = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: decodeBase64Url(store.iv) as Uint8Array<ArrayBuffer> },
        await aesKey(kek),
        decodeBase64Url(store.ct) as Uint8Array<ArrayBuffer>,
      ),
    );
  } catch (cause) {
    throw new BadPasswordError("Wrong password", { cause });
  } finally {
    kek.fill(0);
  }
  return await rsa().importPrivate(pkcs8);
}

/** The base64url `auth_key` for a password and parameters. */
export async function authKeyFor(password: string, params: KdfParams): Promise<string> {
  const { kek, authKey } = await deriveAccountKeys(password, params);
  kek.fill(0);
  return encodeBase64Url(authKey);
}
