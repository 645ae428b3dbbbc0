/** Debian's Chromium, headless, as this machine can run it (no sandbox as root; no background traffic). */
import { chromium } from "playwright-core";

/** `args`: more command-line switches (e.g. `--host-resolver-rules=…` to give a site's name to loopback). */
export function launchChromium(args: string[] = []) {
  return chromium.launch({
    executablePath: process.env.EZIPC_CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...args,
    ],
  });
}
