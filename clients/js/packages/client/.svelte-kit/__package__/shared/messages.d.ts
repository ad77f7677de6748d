import type { BackoffOptions } from '../backoff.js';
import { RoomcastError, type ErrorCode } from '../errors.js';
import type { StateInfo } from '../link.js';
import type { ClientMessage, ServerMessage } from '../protocol.js';
/**
 * The serializable part of the connection options a tab hands to the hub.
 * Functions (mint, action) stay in the tab: the hub asks a tab to mint.
 */
export interface HubConfig {
    url?: string;
    key?: string;
    baseUrl?: string;
    /** The tab can mint fresh URLs (it has `mint` or `action`). */
    canMint: boolean;
    backoff?: BackoffOptions;
    pingInterval?: number;
    pongTimeout?: number;
    connectTimeout?: number;
    fatalCloseCodes?: number[];
}
export interface WireError {
    code: ErrorCode;
    message: string;
    closeCode?: number;
}
export type WireStateInfo = Omit<StateInfo, 'error'> & {
    error?: WireError;
};
/** Tab → hub. */
export type TabMessage = {
    t: 'hello';
    config: HubConfig;
    lock?: string;
} | {
    t: 'msg';
    msg: ClientMessage;
} | {
    t: 'hb';
} | {
    t: 'wake';
} | {
    t: 'bye';
} | {
    t: 'minted';
    req: number;
    url?: string;
    error?: string;
};
/** Hub → tab. */
export type HubMessage = {
    t: 'state';
    info: WireStateInfo;
} | {
    t: 'msg';
    msg: ServerMessage;
} | {
    t: 'mint';
    req: number;
} | {
    t: 'error';
    error: WireError;
};
export declare function toWireError(e: RoomcastError): WireError;
export declare function fromWireError(w: WireError): RoomcastError;
export declare function toWireState(info: StateInfo): WireStateInfo;
export declare function fromWireState(info: WireStateInfo): StateInfo;
