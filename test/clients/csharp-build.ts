import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** clients/csharp, where `make` builds the C# client, its NUnit tests and its conformance driver. */
export const csharpDir = fileURLToPath(new URL("../../../clients/csharp", import.meta.url));

/**
 * Builds the C# client with Mono's mcs (make: only what changed). Throws with the compiler's output when the
 * build fails or Mono is missing (`bash scripts/setup-services.sh` installs it).
 */
export function buildCsharp(): void {
  try {
    execFileSync("make", ["-s", "-C", csharpDir], { stdio: "pipe" });
  } catch (e) {
    const err = e as { stdout?: Buffer; stderr?: Buffer; message: string };
    throw new Error(
      `building clients/csharp failed (Mono's mcs is installed by scripts/setup-services.sh): ${err.message}\n${err.stdout ?? ""}${err.stderr ?? ""}`,
    );
  }
}
