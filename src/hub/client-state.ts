/** A client as the hub knows it (its registry's entry), and the name it goes by. */

import type { Connection } from "../transport/types.js";
import { PeerVars, type VarsPeer } from "../vars/vars-holdings.js";

/**
 * The name a client goes by (in `ls`, as a publisher, as an RPC caller): the name it gave, and on an
 * authenticated connection the identity the handshake proved (`name@identity`; a bare public key shortened).
 */
export function displayName(name: string, conn: Connection): string {
  const id = conn.peer?.name;
  if (!id) return name;
  return `${name}@${id === conn.peer?.publicKey ? id.slice(0, 8) : id}`;
}

/** A client as the hub knows it; outlives a connection during the reconnect window. */
export class ClientState implements VarsPeer {
  conn: Connection | null = null;
  /** Its pointers (vars-hub.ts). */
  readonly vars = new PeerVars();
  windowTimer: NodeJS.Timeout | null = null;
  /** `name#id`, as subscribers see the publisher, and its UTF-8 bytes. */
  label = "";
  labelBytes: Buffer = Buffer.alloc(0);
  /** When it connected, or lost its connection. */
  since = Date.now();
  /** Its connections cut as a slow consumer (while the hub knew it: a resumed client keeps its count). */
  slowConsumerCuts = 0;
  /** Who its connections proved to be (an authenticated handshake's peer name), or null on plain ones. */
  identity: string | null = null;

  constructor(
    readonly id: string,
    name: string,
  ) {
    this.name = name;
  }

  get name(): string {
    return this.nameValue;
  }
  set name(name: string) {
    this.nameValue = name;
    this.label = `${name}#${this.id.slice(0, 6)}`;
    this.labelBytes = Buffer.from(this.label, "utf8");
  }
  private nameValue = "";
}
