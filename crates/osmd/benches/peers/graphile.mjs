// graphile-worker drains N no-op jobs, for the engine benchmark's side-by-side figure.
//
//   node graphile.mjs <unbatched|batched> <jobs> <postgres url of an empty database>
//
// Enqueues with makeWorkerUtils().addJobs() in batches of 5,000 (timed apart), then times the
// drain from worker start to the N-th handler call (after a CHECKPOINT, as the osm drain).
// Prints one JSON line on stdout.
// Settings as /work/shared/reference/bench-peers.md gives them: concurrency 10; "batched" adds
// localQueue.size 500 and completeJobBatchDelay/failJobBatchDelay 0.
import { Logger, makeWorkerUtils, run } from "graphile-worker";

const [mode, jobsArg, connectionString] = process.argv.slice(2);
if (!["unbatched", "batched"].includes(mode) || !jobsArg || !connectionString) {
  console.error("usage: node graphile.mjs <unbatched|batched> <jobs> <postgres url>");
  process.exit(2);
}
const jobs = Number(jobsArg);
const ENQUEUE_BATCH = 5000;
const quiet = new Logger(() => () => {});

const utils = await makeWorkerUtils({ connectionString, logger: quiet });
await utils.migrate();
const enqueueStart = performance.now();
for (let i = 0; i < jobs; i += ENQUEUE_BATCH) {
  const n = Math.min(ENQUEUE_BATCH, jobs - i);
  await utils.addJobs(Array.from({ length: n }, () => ({ identifier: "noop", payload: {} })));
}
const enqueueMs = performance.now() - enqueueStart;
// As before osm's drain: dirty pages written out first, so no checkpoint falls inside the drain.
await utils.withPgClient((client) => client.query("CHECKPOINT"));
const walPosition = () =>
  utils.withPgClient(async (client) => {
    const r = await client.query("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8 AS at");
    return Number(r.rows[0].at);
  });
const walBefore = await walPosition();

const worker =
  mode === "batched"
    ? { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
    : {};
let handled = 0;
let drained;
const allHandled = new Promise((resolve) => (drained = resolve));
const drainStart = performance.now();
const runner = await run({
  connectionString,
  concurrency: 10,
  logger: quiet,
  taskList: {
    noop: async () => {
      handled += 1;
      if (handled === jobs) drained(performance.now());
    },
  },
  preset: { worker },
});
const drainEnd = await allHandled;
const walBytes = (await walPosition()) - walBefore;
await runner.stop();
await utils.release();
const drainMs = drainEnd - drainStart;
console.log(
  JSON.stringify({ mode, jobs, enqueueMs, drainMs, jobsPerSecond: (jobs * 1000) / drainMs, walBytes }),
);
