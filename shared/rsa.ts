/**
 * The one interface every RSA operation goes through, with WebCrypto as the first backend.
 *
 * All keys are RSA-4096 with e = 65537. Signatures are RSASSA-PSS-SHA256 (salt 478 on sign;
 * 478 then 32 on verify), encryption is RSA-OAEP-SHA256 with MGF1-SHA256 and an empty label
 * unless a caller passes one (Group 17's public channel labels its ciphertexts).
 *
 * @module
 */

import { KeyError } from "./errors.ts";

/** Bits of every SOCP RSA key. */
export const RSA_BITS = 4096;
/** Largest OAEP-SHA256 plaintext for RSA-4096: 512 − 2·32 − 2. */
export const OAEP_MAX_PLAINTEXT = 446;
/** PSS salt length socp signs with (the maximum for RSA-4096/SHA-256, Python's MAX_LENGTH). */
export const PSS_SALT_SIGN = 478;
/** Salt lengths tried on verify, in order. */
export const PSS_SALTS_VERIFY: readonly number[] = [478, 32];

/** A public key: its DER SubjectPublicKeyInfo plus backend handles. */
export interface PublicKey {
  /** DER SubjectPublicKeyInfo bytes. */
  readonly spki: Uint8Array;
}

/** A private key: its DER PKCS#8 bytes plus backend handles. */
export interface PrivateKey {
  /** DER PKCS#8 bytes. */
  readonly pkcs8: Uint8Array;
}

/** A key pair. */
export interface KeyPair {
  /** The public half. */
  readonly publicKey: PublicKey;
  /** The private half. */
  readonly privateKey: PrivateKey;
}

/**
 * Every RSA operation socp performs. A faster backend (e.g. OpenSSL through FFI) implements the
 * same interface and is installed with {@linkcode setRsaBackend}.
 */
export interface RsaBackend {
  /** Generates a fresh RSA-4096 key pair (e = 65537). */
  generate(): Promise<KeyPair>;
  /** Imports DER SPKI; throws `KeyError` if it is not RSA-4096 with e = 65537. */
  importPublic(spki: Uint8Array): Promise<PublicKey>;
  /** Imports DER PKCS#8; throws `KeyError` when malformed or not RSA-4096. */
  importPrivate(pkcs8: Uint8Array): Promise<PrivateKey>;
  /** The public half of a private key. */
  publicKeyOf(key: PrivateKey): Promise<PublicKey>;
  /** RSASSA-PSS-SHA256 with the given salt length (default 478). */
  sign(key: PrivateKey, data: Uint8Array, saltLength?: number): Promise<Uint8Array>;
  /** True when `sig` verifies over `data` with one of the given salt lengths. */
  verify(
    key: PublicKey,
    data: Uint8Array,
    sig: Uint8Array,
    saltLengths?: readonly number[],
  ): Promise<boolean>;
  /**
   * RSA-OAEP-SHA256; `plaintext` must be at most 446 bytes. `label` is the OAEP label (empty
   * when absent, as every SOCP peer uses except Group 17's public channel).
   */
  encrypt(key: PublicKey, plaintext: Uint8Array, label?: Uint8Array): Promise<Uint8Array>;
  /** RSA-OAEP-SHA256 decryption with an optional OAEP label; throws on a bad ciphertext. */
  decrypt(key: PrivateKey, ciphertext: Uint8Array, label?: Uint8Array): Promise<Uint8Array>;
}

const PSS_ALG = { name: "RSA-PSS", hash: "SHA-256" } as const;
const OAEP_ALG = { name: "RSA-OAEP", hash: "SHA-256" } as const;

class WebCryptoPublicKey implements PublicKey {
  readonly spki: Uint8Array;
  readonly pss: CryptoKey;
  #oaep: Promise<CryptoKey> | undefined;
  constructor(spki: Uint8Array, pss: CryptoKey) {
    this.spki = spki;
    this.pss = pss;
  }
  oaep(): Promise<CryptoKey> {
    this.#oaep ??= crypto.subtle.importKey("spki", bytes(this.spki), OAEP_ALG, false, [
      "encrypt",
    ]);
    return this.#oaep;
  }
}

class WebCryptoPrivateKey implements PrivateKey {
  readonly pkcs8: Uint8Array;
  readonly pss: CryptoKey;
  #oaep: Promise<CryptoKey> | undefined;
  constructor(pkcs8: Uint8Array, pss: CryptoKey) {
    this.pkcs8 = pkcs8;
    this.pss = pss;
  }
  oaep(): Promise<CryptoKey> {
    this.#oaep ??= crypto.subtle.importKey("pkcs8", bytes(this.pkcs8), OAEP_ALG, false, [
      "decrypt",
    ]);
    return this.#oaep;
  }
}

function bytes(view: Uint8Array): Uint8Array<ArrayBuffer> {
  return view.buffer instanceof ArrayBuffer && view.byteOffset === 0 &&
      view.byteLength === view.buffer.byteLength
    ? view as Uint8Array<ArrayBuffer>
    : new Uint8Array(view);
}

async function checkStrength(key: CryptoKey): Promise<void> {
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const e = jwk.e ?? "";
  if (e !== "AQAB") throw new KeyError(`RSA public exponent must be 65537, got "${e}"`);
  const alg = key.algorithm as RsaHashedKeyAlgorithm;
  if (alg.modulusLength !== RSA_BITS) {
    throw new KeyError(`RSA key must be ${RSA_BITS} bits, got ${alg.modulusLength}`);
  }
}

function oaepParams(label: Uint8Array | undefined): RsaOaepParams {
  return label === undefined || label.length === 0
    ? { name: "RSA-OAEP" }
    : { name: "RSA-OAEP", label: bytes(label) };
}

function asPublic(key: PublicKey): WebCryptoPublicKey {
  if (!(key instanceof WebCryptoPublicKey)) throw new TypeError("Key is not a WebCrypto key");
  return key;
}
function asPrivate(key: PrivateKey): WebCryptoPrivateKey {
  if (!(key instanceof WebCryptoPrivateKey)) throw new TypeError("Key is not a WebCrypto key");
  return key;
}

/** The WebCrypto backend. */
export const webCryptoBackend: RsaBackend = {
  async generate(): Promise<KeyPair> {
    const pair = await crypto.subtle.generateKey(
      { ...PSS_ALG, modulusLength: RSA_BITS, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ["sign", "verify"],
    );
    const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    return {
      publicKey: await this.importPublic(spki),
      privateKey: await this.importPrivate(pkcs8),
    };
  },
  async importPublic(spki: Uint8Array): Promise<PublicKey> {
    let key: CryptoKey;
    try {
      key = await crypto.subtle.importKey("spki", bytes(spki), PSS_ALG, true, ["verify"]);
    } catch (cause) {
      throw new KeyError("Public key is not a well-formed RSA SubjectPublicKeyInfo", { cause });
    }
    await checkStrength(key);
    return new WebCryptoPublicKey(new Uint8Array(spki), key);
  },
  async importPrivate(pkcs8: Uint8Array): Promise<PrivateKey> {
    let key: CryptoKey;
    try {
      key = await crypto.subtle.importKey("pkcs8", bytes(pkcs8), PSS_ALG, true, ["sign"]);
    } catch (cause) {
      throw new KeyError("Private key is not a well-formed RSA PKCS#8 key", { cause });
    }
    await checkStrength(key);
    return new WebCryptoPrivateKey(new Uint8Array(pkcs8), key);
  },
  async publicKeyOf(key: PrivateKey): Promise<PublicKey> {
    const { n, e } = await crypto.subtle.exportKey("jwk", asPrivate(key).pss);
    if (n === undefined || e === undefined) throw new KeyError("Private key has no modulus");
    const pub = await crypto.subtle.importKey(
      "jwk",
      { kty: "RSA", n, e, alg: "PS256", ext: true },
      PSS_ALG,
      true,
      ["verify"],
    );
    return await this.importPublic(new Uint8Array(await crypto.subtle.exportKey("spki", pub)));
  },
  async sign(key, data, saltLength = PSS_SALT_SIGN): Promise<Uint8Array> {
    const sig = await crypto.subtle.sign(
      { name: "RSA-PSS", saltLength },
      asPrivate(key).pss,
      bytes(data),
    );
    return new Uint8Array(sig);
  },
  async verify(key, data, sig, saltLengths = PSS_SALTS_VERIFY): Promise<boolean> {
    if (sig.length !== RSA_BITS / 8) return false;
    const pss = asPublic(key).pss;
    for (const saltLength of saltLengths) {
      if (
        await crypto.subtle.verify({ name: "RSA-PSS", saltLength }, pss, bytes(sig), bytes(data))
      ) {
        return true;
      }
    }
    return false;
  },
  async encrypt(key, plaintext, label): Promise<Uint8Array> {
    if (plaintext.length > OAEP_MAX_PLAINTEXT) {
      throw new RangeError(
        `OAEP plaintext is ${plaintext.length} bytes; at most ${OAEP_MAX_PLAINTEXT} fit`,
      );
    }
    const ct = await crypto.subtle.encrypt(
      oaepParams(label),
      await asPublic(key).oaep(),
      bytes(plaintext),
    );
    return new Uint8Array(ct);
  },
  async decrypt(key, ciphertext, label): Promise<Uint8Array> {
    const pt = await crypto.subtle.decrypt(
      oaepParams(label),
      await asPrivate(key).oaep(),
      bytes(ciphertext),
    );
    return new Uint8Array(pt);
  },
};

let backend: RsaBackend = webCryptoBackend;

/**
 * The active backend.
 *
 * @example
 * ```ts
 * import { rsa } from "./rsa.ts";
 * console.assert(typeof rsa().sign === "function");
 * ```
 */
export function rsa(): RsaBackend {
  return backend;
}

/**
 * The key pair of a private key, the public half recomputed from it (e.g. after an account's
 * key was unsealed).
 *
 * @example
 * ```ts ignore
 * const pair = await keyPairOf(await openPrivateKey(store, password));
 * ```
 */
export async function keyPairOf(privateKey: PrivateKey): Promise<KeyPair> {
  return { privateKey, publicKey: await rsa().publicKeyOf(privateKey) };
}

/** Replaces the active backend (e.g. with a native one on a server's hot path). */
export function setRsaBackend(next: RsaBackend): void {
  backend = next;
}
