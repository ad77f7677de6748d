import type { RoomcastClient } from '../client.js';
import type { ConnectionState } from '../link.js';
import type { EventMap, Meta } from '../protocol.js';
/** The `controller` of `<WebSocket>`: bind it to open or close the connection from code. */
export interface WebSocketController<E extends EventMap = EventMap, M = Meta> {
    /** Connects (again); with `action`, POSTs it for a fresh URL. */
    open(): void;
    /** Closes for good until `open()`. */
    close(): void;
    readonly client: RoomcastClient<E, M> | undefined;
    readonly state: ConnectionState;
    readonly isOpen: boolean;
}
