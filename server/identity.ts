/**
 * The server identity: a UUIDv4 and an RSA-4096 key pair, created on first start and reused
 * from the data directory afterwards (until deleted).
 *
 * @module
 */

import { join } from "node:path";
import {
  encodePublicKey,
  importPrivateKeyText,
  type KeyPair,
  type PrivateKey,
  privateKeyToPem,
  type PublicKey,
  rsa,
} from "../shared/mod.ts";
import { PRIVATE_FILE_MODE, restrictMode, type Store } from "../storage/mod.ts";
import { prepareDataDir } from "./data_dir.ts";

/** A server's id and keys. */
export interface ServerIdentity {
  /** UUIDv4. */
  serverId: string;
  /** Private key. */
  privateKey: PrivateKey;
  /** Public key. */
  publicKey: PublicKey;
  /** base64url DER SPKI of the public key. */
  publicKeyText: string;
}

/** The file holding the server's private key inside a data dir. */
export function keyPath(dataDir: string): string {
  return join(dataDir, "server_key.pem");
}

/**
 * Loads the identity from `dataDir` and `store`, creating it on first start. The data directory
 * is kept at mode 0700 and the private key file at 0600 (narrowed when wider).
 */
export async function loadOrCreateIdentity(
  dataDir: string,
  store: Store,
  options: { generate?: () => Promise<KeyPair> } = {},
): Promise<{ identity: ServerIdentity; created: boolean }> {
  await prepareDataDir(dataDir);
  const path = keyPath(dataDir);
  await restrictMode(path, PRIVATE_FILE_MODE);
  let created = false;
  let privateKey: PrivateKey;
  let publicKey: PublicKey;
  try {
    privateKey = await importPrivateKeyText(await Deno.readTextFile(path));
    publicKey = await rsa().publicKeyOf(privateKey);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new Error(`Server key ${path} is unreadable; delete it to make a new identity`, {
        cause: error,
      });
    }
    const pair = await (options.generate ?? (() => rsa().generate()))();
    privateKey = pair.privateKey;
    publicKey = pair.publicKey;
    const tmp = `${path}.tmp`;
    await Deno.remove(tmp).catch(() => {}); // a leftover could have a wider mode
    await Deno.writeTextFile(tmp, privateKeyToPem(privateKey), { mode: PRIVATE_FILE_MODE });
    await Deno.rename(tmp, path);
    created = true;
  }
  let serverId = await store.getSetting("server_id");
  if (!serverId || created) {
    serverId = crypto.randomUUID();
    await store.setSetting("server_id", serverId);
  }
  return {
    identity: { serverId, privateKey, publicKey, publicKeyText: encodePublicKey(publicKey) },
    created,
  };
}
