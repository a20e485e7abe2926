/**
 * socp: a federated, end-to-end encrypted chat network (SOCP v1.3) in one program.
 *
 *   socp server [options]            run a server (node of the mesh)
 *   socp client <config.json> [...]  run the terminal client
 *   socp mesh --servers N            run a local mesh of N servers on loopback
 *
 * @module
 */

const USAGE = `socp: federated end-to-end encrypted chat (SOCP v1.3)

Usage:
  socp server [options]             run a server; socp server --help for options
  socp client <config.json> [opts]  run the terminal client; socp client --help
  socp mesh --servers <n> [opts]    start a local mesh of n servers; socp mesh --help
  socp accounts import <file>       create accounts from "username password" lines
  socp --version`;

/**
 * Installs the OpenSSL RSA backend when it loads (else WebCrypto; `SOCP_RSA` forces either) for
 * a server or client run, not for `--help`. Resolves with the backend's description (the
 * server logs it once its logger exists), or with an exit code on failure.
 */
async function useFastRsa(
  role: "server" | "client",
  args: string[],
): Promise<{ description: string } | { exit: number }> {
  if (args.includes("--help") || args.includes("-h")) return { description: "" };
  const { installRsaBackend } = await import("./shared/openssl_rsa.ts");
  try {
    // The client says it only with SOCP_DEBUG=1; the server logs it after parsing its flags.
    const choice = installRsaBackend(role, role === "server" ? { log: () => {} } : {});
    return { description: choice.description };
  } catch (error) {
    console.error(`socp ${role}: ${error instanceof Error ? error.message : String(error)}`);
    return { exit: 1 };
  }
}

/** Dispatches a subcommand; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "server": {
      const rsa = await useFastRsa("server", rest);
      if ("exit" in rsa) return rsa.exit;
      const { runServer } = await import("./server/mod.ts");
      return await runServer(rest, { rsaBackend: rsa.description });
    }
    case "client": {
      const rsa = await useFastRsa("client", rest);
      if ("exit" in rsa) return rsa.exit;
      const { runClient } = await import("./client/mod.ts");
      return await runClient(rest);
    }
    case "mesh": {
      const { runMesh } = await import("./server/mesh_command.ts");
      return await runMesh(rest);
    }
    case "accounts": {
      const { runAccounts } = await import("./server/accounts_import.ts");
      return await runAccounts(rest);
    }
    case "--version":
    case "version":
      console.log("socp 0.1.0 (SOCP v1.3)");
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return command === undefined ? 64 : 0;
    default:
      console.error(
        `socp: Unknown command "${command}"; the commands are server, client, mesh and accounts (socp --help for more)`,
      );
      return 64;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
