/**
 * The seam between the hub (users, routing) and the server mesh (links to other servers).
 *
 * @module
 */

import type { Envelope, Transport } from "../shared/mod.ts";

/** A server of the operator's group, as clients are told about it. */
export interface GroupServer {
  /** Its id, when it has linked (otherwise unknown yet). */
  server_id?: string;
  /** ws:// URL clients dial. */
  url: string;
  /** Its pinned key, base64url DER SPKI. */
  pubkey: string;
}

/** A known server and the state of this server's link to it (`/readyz`, `/metrics`). */
export interface LinkStatus {
  /** The server's id. */
  server_id: string;
  /** `up`: linked; `connecting`: being dialled; `down`: neither. */
  state: "up" | "connecting" | "down";
  /** True when the server belongs to this operator's server group. */
  group: boolean;
}

/** The mesh as operators see it. */
export interface MeshStatus {
  /** Every known server, sorted by id. */
  links: LinkStatus[];
  /**
   * True while the server has servers to link to (introducers or known peers) but no link has
   * come up since it started.
   */
  joining: boolean;
}

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
  /**
   * Sends a frame to every linked member of this operator's server group except
   * `exceptServerId`: private state (account records, login failures) goes nowhere else.
   */
  broadcastGroup(text: string, exceptServerId?: string): void;
  /** True when `serverId` is pinned to a key of the server group. */
  isGroupServer(serverId: string): boolean;
  /** The other servers of the group that clients can fail over to. */
  groupServers(): GroupServer[];
  /** Known servers and their links, for health checks and metrics. */
  status(): MeshStatus;
  /**
   * How public messages and files are relayed to a linked server: `inner` (SERVER_DELIVER with
   * `inner_type`, socp), `wrapped` (SERVER_DELIVER carrying the user envelope) or `raw` (the user
   * frame itself), as learned from the peer (server/peer_traits.ts).
   */
  relayForm?(serverId: string): "inner" | "wrapped" | "raw";
  /** Asks a linked server for the key of one of its users (server-to-server PUBKEY_REQUEST). */
  requestPubkey?(serverId: string, userId: string): Promise<string | undefined>;
  /** Joins the network (bootstrap) and keeps links alive until disposed. */
  start(): Promise<void>;
}
