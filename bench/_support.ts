/**
 * What the benchmark scripts share: a user's signed USER_HELLO text and a process's CPU time
 * and resident memory from /proc (Linux).
 *
 * @module
 */

import { type KeyPair, serializeEnvelope } from "../shared/mod.ts";
import { signedHello } from "../tests/support/mod.ts";

/**
 * A fresh USER_HELLO text for `userId` with `keys`, signed with the proof of possession
 * (`user_id`, `hello_ts`) socp servers require of socp clients.
 */
export async function helloText(
  keys: KeyPair,
  userId: string,
  options: { displayName: string; caps?: readonly string[] },
): Promise<string> {
  return serializeEnvelope(await signedHello(keys, userId, { ...options, client: "bench" }));
}

/** utime + stime of a process, in seconds (from /proc). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory of a process, in KB (from /proc). */
export async function rssKb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? "0");
}
