import { type Clock } from '../clock.js';
import type { Link } from '../link.js';
import { type HubConfig, type HubMessage, type TabMessage } from './messages.js';
/** A tab as the hub sees it: where to post. MessagePort qualifies. */
export interface HubPort {
    postMessage(msg: HubMessage): void;
}
export interface HubOptions {
    /**
     * Creates the one upstream link from the first tab's config; `mint` asks a
     * live tab for a fresh URL. The worker passes a {@link Connection}.
     */
    createLink(config: HubConfig, mint: (() => Promise<string>) | undefined): Link;
    clock?: Clock;
    /**
     * A tab silent this long (ms) is gone. Tabs beat every 5 s, but browsers
     * throttle timers of hidden tabs to once a minute, hence 75 s by default.
     * Web Locks (when present) and `bye` on pagehide detect closed tabs at once;
     * this timeout covers crashes where neither works.
     */
    heartbeatTimeout?: number;
    /** How long a tab may take to mint (ms). Default 15 000. */
    mintTimeout?: number;
}
/**
 * The SharedWorker's brain: one upstream connection shared by every tab of
 * the origin. Pure logic (no worker APIs), so it is unit-tested with fake ports.
 *
 * - Rooms are reference-counted by tab: the first tab's join goes upstream,
 *   later tabs get an ack and the current `session:list` at once; a room is
 *   left upstream when its last tab leaves or goes away.
 * - Request ids are rewritten so that each `ack`/`reply`/`error` reaches the
 *   tab that asked, with that tab's id.
 * - Room traffic goes to the tabs holding the room; direct messages, welcome
 *   and state go to every tab.
 * - After a reconnect the hub re-joins every held room itself.
 * - All tabs share one session: a publish with `echo: false` from one tab is
 *   copied locally to the other tabs in the room, which the node would skip.
 */
export declare class Hub {
    #private;
    constructor(opts: HubOptions);
    /** Number of live tabs. */
    get tabs(): number;
    /** The upstream link (undefined until the first hello, and after the last tab left). */
    get link(): Link | undefined;
    /** Rooms joined upstream or being joined, with their tab counts. */
    rooms(): Record<string, number>;
    /** Handles one message from a tab. */
    receive(port: HubPort, m: TabMessage): void;
    /** Forgets a tab (bye, released lock, heartbeat timeout): it leaves the rooms no other tab holds. */
    disconnect(port: HubPort): void;
    /** Drops tabs silent for longer than the heartbeat timeout. Called on a timer; public for tests. */
    sweep(): void;
}
