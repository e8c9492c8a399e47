/**
 * How a coordinator reacts to what every coordinator (itself included) announces on the event bus, so that the one
 * leading a run hears about uploads and failure reports another one accepted, and every one wakes the long polls of
 * the clients a round sampled. With the embedded in-process bus this only hears itself, which is harmless: kicks
 * coalesce, and failures are recorded idempotently.
 *
 *   update.accepted, run.state   → wake the run's driver (the leader checks whether every sampled client is in)
 *   task.failed                  → record the failure in the round's scratch, wake the driver
 *   round.started                → answer this process's PullTask long polls of the sampled clients
 *   round.aggregated / failed    → forget the round's scratch
 */
import type { Subscription } from '../bus/bus.js';
import { SUBJECTS, type LetheEvent } from '../bus/events.js';
import type { CoordinatorCore } from './core.js';
import type { RunRegistry } from './runs.js';

/** Starts following the bus; the returned function stops it. */
export function followPeers(core: CoordinatorCore, runs: RunRegistry): () => void {
  const subscription: Subscription = core.bus.subscribe(SUBJECTS.all);
  void (async () => {
    for await (const event of subscription) {
      try {
        react(core, runs, event);
      } catch (err) {
        core.events.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
      }
    }
  })();
  return () => subscription.unsubscribe();
}

function react(core: CoordinatorCore, runs: RunRegistry, event: LetheEvent): void {
  switch (event.type) {
    case 'update.accepted':
    case 'run.state':
      runs.kick(event.runId);
      return;
    case 'task.failed':
      runs.scratch(event.runId, event.round).failures.set(event.clientId, event.reason);
      runs.kick(event.runId);
      return;
    case 'round.started':
      core.presence.notify(event.sampledClientIds);
      return;
    case 'round.aggregated':
    case 'round.failed':
      runs.dropScratch(event.runId, event.round);
      return;
    case 'unlearning.state':
      return;
  }
}

/** Publishes on the bus unless it is closed (the coordinator is shutting down): announcements are best effort. */
export function announce(core: CoordinatorCore, event: LetheEvent): void {
  if (core.bus.isClosed) return;
  try {
    core.bus.publish(event);
  } catch (err) {
    core.events.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
  }
}
