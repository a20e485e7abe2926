/**
 * The seam between the hub (users, routing) and the server mesh (links to other servers).
 *
 * @module
 */

import type { Envelope, Transport } from "../shared/mod.ts";

/** What the hub needs from the mesh of server links. */
export interface Mesh extends AsyncDisposable {
  /** Sends a frame (JSON text) to one linked server; false when there is no live link. */
  sendToServer(serverId: string, text: string): boolean;
  /** Sends a frame to every linked server except `exceptServerId`. */
  broadcast(text: string, exceptServerId?: string): void;
  /** Takes over a connection whose first frame identifies a server. */
  acceptServer(transport: Transport, first: Envelope, remote: string): void;
  /** Ids of servers with a live link. */
  linkedServers(): string[];
  /** Joins the network (bootstrap) and keeps links alive until disposed. */
  start(): Promise<void>;
}
