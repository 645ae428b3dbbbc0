/**
 * A chat client: requests answered by id, lines pushed as events. After a lost connection it reconnects by
 * itself and enters its room again under its nickname (`rejoined` event).
 */
import { EventEmitter } from "node:events";
import type { Infer } from "../../codec/schema.js";
import { type ErrorCode, ErrorCodes, EzipcError } from "../../errors.js";
import type { Connector } from "../../service/service.js";
import { Service } from "../../service/service.js";
import type { Session } from "../../service/session.js";
import type { DialerOptions } from "../../transport/dialer.js";
import { type chatMessages, chatProtocol } from "./protocol.js";
import type { Line } from "./store.js";

type Body<K extends keyof typeof chatMessages> = Infer<(typeof chatMessages)[K]>;

export interface ChatClientEvents {
  /** A line for this client: a message in its room, a whisper to it, an announcement. */
  line: [line: Line];
  /** After a reconnect: back in `room` as `nick`, with the room's history of the day. */
  rejoined: [welcome: Body<"welcome">];
  /** The connection dropped (it reconnects by itself). */
  disconnected: [];
}

interface Pending {
  resolve: (m: { type: string; body: unknown }) => void;
  reject: (e: EzipcError) => void;
}

export class ChatClient extends EventEmitter<ChatClientEvents> {
  private readonly service = new Service();
  private readonly connector: Connector;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Where to go back to after a reconnect. */
  private place: { room: string; nick: string } | null = null;

  private constructor(url: string, options: DialerOptions) {
    super();
    this.connector = this.service.connect(url, chatProtocol, options);
    const answer = (type: string) =>
      this.service.handle(type, (body: { id: number }) => {
        const p = this.pending.get(body.id);
        if (!p) return;
        this.pending.delete(body.id);
        if (type === "refused") {
          const b = body as unknown as Body<"refused">;
          const code = (b.code in ErrorCodes ? b.code : "EZIPC_REMOTE") as ErrorCode;
          p.reject(new EzipcError(code, b.message));
        } else p.resolve({ type, body });
      });
    for (const type of ["ok", "refused", "welcome", "members", "roomList"]) answer(type);
    this.service.handle("line", (line: Line) => this.emit("line", line));
    this.service.on("sessionClosed", () => {
      const lost = new EzipcError("EZIPC_CONNECTION_CLOSED", "connection to the chat server lost");
      for (const p of this.pending.values()) p.reject(lost);
      this.pending.clear();
      this.emit("disconnected");
    });
    this.service.on("session", (s) => void this.rejoin(s));
  }

  /** Connects (retrying while the server is not up when `waitForServer`); resolves once connected. */
  static async connect(url: string, options: DialerOptions = {}): Promise<ChatClient> {
    const c = new ChatClient(url, { heartbeatIntervalMs: 2_000, heartbeatTimeoutMs: 6_000, ...options });
    await c.connector.connected();
    return c;
  }

  private async rejoin(session: Session): Promise<void> {
    if (!this.place) return;
    try {
      const w = await this.request(session, "hello", { ...this.place });
      this.emit("rejoined", w.body as Body<"welcome">);
    } catch {
      // the old session may not have been dropped yet: the next reconnect tries again
      session.connection.destroy();
    }
  }

  private request(session: Session | null, type: string, body: Record<string, unknown>) {
    if (!session?.open) return Promise.reject(new EzipcError("EZIPC_CONNECTION_CLOSED", "not connected"));
    const id = this.nextId++;
    return new Promise<{ type: string; body: unknown }>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      session.send(type, { ...body, id });
    });
  }

  private call(type: string, body: Record<string, unknown>) {
    return this.request(this.connector.session, type, body);
  }

  /** Enters `room` as `nick`; resolves with the room's history of the day. Rejects with `EZIPC_NICK_TAKEN`… */
  async hello(room: string, nick: string): Promise<Body<"welcome">> {
    const w = (await this.call("hello", { room, nick })).body as Body<"welcome">;
    this.place = { room: w.room, nick: w.nick };
    return w;
  }
  async say(text: string): Promise<void> {
    await this.call("say", { text });
  }
  async whisper(to: string, text: string): Promise<void> {
    await this.call("whisper", { to, text });
  }
  async nick(name: string): Promise<void> {
    await this.call("nick", { name });
    if (this.place) this.place.nick = name;
  }
  async who(): Promise<string[]> {
    return ((await this.call("who", {})).body as Body<"members">).nicks;
  }
  async rooms(): Promise<{ name: string; members: number }[]> {
    return ((await this.call("rooms", {})).body as Body<"roomList">).rooms;
  }
  async join(room: string): Promise<Body<"welcome">> {
    const w = (await this.call("join", { room })).body as Body<"welcome">;
    this.place = { room: w.room, nick: w.nick };
    return w;
  }
  async close(): Promise<void> {
    await this.service.close();
  }
}
