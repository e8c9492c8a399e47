/** A live in-process coordinator on 127.0.0.1 with an admin and one enrolled client, for tests of one behaviour each. */
import { join } from 'node:path';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { Admin, TestClient } from './helpers.js';

export interface LiveCoordinator {
  readonly coordinator: Coordinator;
  readonly admin: Admin;
  /** Enrolled and live (one heartbeat sent). */
  readonly client: TestClient;
  close(): Promise<void>;
}

/** Starts a coordinator with its data under `dir`, then enrolls one client. */
export async function liveCoordinator(dir: string): Promise<LiveCoordinator> {
  const coordinator = new Coordinator({ dataDir: join(dir, 'data'), port: 0, log: () => undefined, waitForClientsMs: 50, backend: 'cpu' });
  await coordinator.start();
  const admin = new Admin(coordinator.address, coordinator.adminToken);
  const client = new TestClient(coordinator.address);
  await client.enroll(await admin.joinToken(1));
  await client.heartbeat();
  return {
    coordinator,
    admin,
    client,
    async close() {
      client.close();
      admin.close();
      await coordinator.close();
    },
  };
}
