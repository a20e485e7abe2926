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
  socp --version`;

/** Dispatches a subcommand; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "server": {
      const { runServer } = await import("./server/mod.ts");
      return await runServer(rest);
    }
    case "client": {
      const { runClient } = await import("./client/mod.ts");
      return await runClient(rest);
    }
    case "mesh": {
      const { runMesh } = await import("./server/mesh_command.ts");
      return await runMesh(rest);
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
      console.error(`socp: unknown command "${command}"\n\n${USAGE}`);
      return 64;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
