import assert from "node:assert/strict";
import { defaultSignConcurrency, SignScheduler } from "./sign_scheduler.ts";

/** A task that runs until `finish()` is called, recording its label when it starts. */
function gate(started: string[], label: string) {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    task: () => {
      started.push(label);
      return done.then(() => label);
    },
    finish: () => finish(),
  };
}

Deno.test("`SignScheduler` runs at most `concurrency` tasks at once", async () => {
  const scheduler = new SignScheduler({ concurrency: 2 });
  const started: string[] = [];
  const gates = ["a", "b", "c", "d"].map((label) => gate(started, label));
  const results = gates.map((g) => scheduler.schedule(g.task));
  await Promise.resolve();
  assert.deepEqual(started, ["a", "b"]);
  assert.equal(scheduler.running, 2);
  assert.equal(scheduler.waiting, 2);
  gates[0]!.finish();
  assert.equal(await results[0], "a");
  await Promise.resolve();
  assert.deepEqual(started, ["a", "b", "c"]);
  for (const g of gates) g.finish();
  assert.deepEqual(await Promise.all(results), ["a", "b", "c", "d"]);
  assert.equal(scheduler.running, 0);
  assert.equal(scheduler.waiting, 0);
});

Deno.test("`SignScheduler` serves waiting lanes in turn, not first come first served", async () => {
  const scheduler = new SignScheduler({ concurrency: 1 });
  using busy = scheduler.lane("busy");
  using quiet = scheduler.lane("quiet");
  const started: string[] = [];
  const blocker = gate(started, "blocker");
  const first = scheduler.schedule(blocker.task);
  // The busy lane queues ten tasks, then the quiet lane one.
  const busyTasks = Array.from({ length: 10 }, (_, i) => gate(started, `busy${i}`));
  const busyResults = busyTasks.map((g) => busy.run(() => scheduler.schedule(g.task)));
  const quietTask = gate(started, "quiet");
  const quietResult = quiet.run(() => scheduler.schedule(quietTask.task));
  assert.equal(busy.pending, 10);
  assert.equal(quiet.pending, 1);
  assert.equal(scheduler.busyLanes, 2);
  blocker.finish();
  await first;
  // busy0 runs, then the quiet lane's task, not busy1.
  busyTasks[0]!.finish();
  await busyResults[0];
  await Promise.resolve();
  assert.deepEqual(started, ["blocker", "busy0", "quiet"]);
  quietTask.finish();
  await quietResult;
  for (const g of busyTasks) g.finish();
  await Promise.all(busyResults);
  assert.equal(started.length, 12);
  assert.equal(busy.pending + quiet.pending, 0);
});

Deno.test("`SignLane.run()` keeps its lane across awaits and timers", async () => {
  const scheduler = new SignScheduler({ concurrency: 1 });
  using lane = scheduler.lane("user");
  const started: string[] = [];
  const blocker = gate(started, "blocker");
  const first = scheduler.schedule(blocker.task);
  const later = lane.run(async () => {
    await new Promise((resolve) => setTimeout(resolve, 1));
    await null;
    return scheduler.schedule(() => Promise.resolve("late"));
  });
  // Wait until the task is queued on the lane (it waits behind the blocker).
  while (lane.pending === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.equal(lane.pending, 1);
  blocker.finish();
  await first;
  assert.equal(await later, "late");
  assert.equal(lane.pending, 0);
});

Deno.test("`SignLane.congested()` reports the oldest wait; `drainedTo()` resolves as it drains", async () => {
  let now = 0;
  const scheduler = new SignScheduler({ concurrency: 1, now: () => now });
  using lane = scheduler.lane("user");
  const started: string[] = [];
  const blocker = gate(started, "blocker");
  const first = scheduler.schedule(blocker.task);
  const tasks = Array.from({ length: 3 }, (_, i) => gate(started, `t${i}`));
  const results = tasks.map((g) => lane.run(() => scheduler.schedule(g.task)));
  now = 150;
  assert.equal(lane.oldestWaitMs(), 150);
  assert.equal(lane.congested(200), false);
  now = 250;
  assert.equal(lane.congested(200), true);
  let drained = false;
  const draining = lane.drainedTo(1).then(() => (drained = true));
  blocker.finish();
  await first;
  tasks[0]!.finish();
  await results[0];
  await Promise.resolve();
  assert.equal(drained, false, "two of the lane's tasks are still pending");
  tasks[1]!.finish();
  await results[1];
  await draining;
  assert.equal(drained, true);
  tasks[2]!.finish();
  await results[2];
  assert.equal(lane.congested(0), false);
  assert.equal(await lane.drainedTo(0), undefined);
});

Deno.test("`SignScheduler` frees the slot of a task that fails", async () => {
  const scheduler = new SignScheduler({ concurrency: 1 });
  await assert.rejects(scheduler.schedule(() => Promise.reject(new Error("bad key"))), /bad key/);
  assert.equal(scheduler.running, 0);
  assert.equal(await scheduler.schedule(() => Promise.resolve(7)), 7);
});

Deno.test("a disposed `SignLane` releases whoever waits for it to drain", async () => {
  const scheduler = new SignScheduler({ concurrency: 1 });
  const lane = scheduler.lane("user");
  const started: string[] = [];
  const blocker = gate(started, "blocker");
  const result = lane.run(() => scheduler.schedule(blocker.task));
  const draining = lane.drainedTo(0);
  lane[Symbol.dispose]();
  await draining;
  blocker.finish();
  await result;
});

Deno.test("`SignScheduler` refuses a concurrency that is not a positive integer", () => {
  assert.throws(() => new SignScheduler({ concurrency: 0 }), RangeError);
  assert.throws(() => new SignScheduler({ concurrency: 1.5 }), RangeError);
  assert.equal(defaultSignConcurrency(), 2 * navigator.hardwareConcurrency);
});
