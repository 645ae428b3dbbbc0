/**
 * Library logging: silent by default, switched on and off globally.
 *
 * - `setLogger(logger)` installs a logger for every ezipc component; `setLogger(null)` silences it again.
 * - `NODE_DEBUG=ezipc` (Node's `util.debuglog` convention) turns on a stderr logger at start-up.
 * - Every record is also published on the `node:diagnostics_channel` channel `ezipc:log` when someone
 *   subscribes to it, whether or not a logger is installed.
 *
 * ezipc logs lifecycle events only (connect, close, errors), never per message, so a disabled log costs one
 * check per event.
 */
import diagnosticsChannel from "node:diagnostics_channel";
import { debuglog } from "node:util";

export type LogLevel = "debug" | "info" | "warn" | "error";

/** One log record, as given to a {@link Logger} and published on `ezipc:log`. */
export interface LogRecord {
  level: LogLevel;
  /** The component that logged, e.g. `transport`, `service`. */
  component: string;
  message: string;
  /** Structured details (connection id, address, error). */
  fields?: Record<string, unknown>;
}

/** A pluggable logger: any function taking a {@link LogRecord}. */
export type Logger = (record: LogRecord) => void;

const channel = diagnosticsChannel.channel("ezipc:log");

let logger: Logger | null = null;

/** Installs `next` as the global ezipc logger, or silences logging with `null`. Returns the previous one. */
export function setLogger(next: Logger | null): Logger | null {
  const prev = logger;
  logger = next;
  return prev;
}

/** A logger writing one line per record to stderr. */
export const stderrLogger: Logger = (r) => {
  const fields = r.fields
    ? ` ${JSON.stringify(r.fields, (_k, v) => (v instanceof Error ? v.message : v))}`
    : "";
  process.stderr.write(`ezipc ${r.level} [${r.component}] ${r.message}${fields}\n`);
};

if (debuglog("ezipc").enabled) setLogger(stderrLogger);

/** @internal Emits a record to the installed logger and the diagnostics channel. */
export function log(
  level: LogLevel,
  component: string,
  message: string,
  fields?: Record<string, unknown>,
): void {
  if (logger === null && !channel.hasSubscribers) return;
  const record: LogRecord =
    fields === undefined ? { level, component, message } : { level, component, message, fields };
  if (channel.hasSubscribers) channel.publish(record);
  logger?.(record);
}
